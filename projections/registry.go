package projections

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"runtime/debug"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
)

// Projection describes a named view built from the log.
type Projection[E any] struct {
	// Name identifies the projection in its checkpoint row, its lease,
	// metrics and commands. Keep it stable: a new name starts from
	// position 0. Letters, digits, '_', '-' and '.', at most 100. Required.
	Name string

	// Query selects the events the projection applies. Required (use
	// eventstore.AllEvents() for every event).
	Query eventstore.Query

	// Codec decodes the records. Required.
	Codec eventstore.Codec[E]

	// Apply writes a batch of records, in position order, to the view
	// through tx, the transaction in which the runner also moves the
	// checkpoint past them: the view's writes and the checkpoint commit
	// together or not at all. Writes elsewhere (another database, an HTTP
	// call) are effects, not covered by that guarantee: use a reactor for
	// those. Return an error to roll the batch back; the runner retries
	// with backoff and never moves past a failing event on its own.
	// Required.
	Apply func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[E]) error

	// Reset removes from the view what it derived from events after from
	// (everything when from is 0), in the transaction that moves the
	// checkpoint back to from. A view that can only be cleared as a whole
	// returns an error for from > 0. Optional: without it, reset and
	// rebuild are refused (ErrNoReset), because replaying events onto a
	// view that still holds them would apply them twice.
	Reset func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error

	// BatchSize bounds the events applied in one transaction, overriding
	// Config.BatchSize for this projection. Default: Config.BatchSize.
	BatchSize int
}

// Registry holds an application's projections. Register them with
// AddProjection before passing the registry to New.
type Registry struct {
	entries map[string]*entry
	order   []string
}

// entry is a registered projection with its types erased.
type entry struct {
	name      string
	query     eventstore.Query
	batchSize int
	// key is the second half of the projection's advisory lock key.
	key int32
	// apply decodes and applies raws; a decode error names its position.
	apply func(ctx context.Context, tx pgx.Tx, raws []eventstore.RawRecord) error
	reset func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{entries: map[string]*entry{}}
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// AddProjection registers a projection. It returns an error naming the
// missing or invalid field, or the duplicate name.
func AddProjection[E any](r *Registry, p Projection[E]) error {
	switch {
	case !namePattern.MatchString(p.Name):
		return fmt.Errorf("projections: %w: name %q must match %s", ErrInvalidProjection, p.Name, namePattern)
	case p.Codec == nil:
		return fmt.Errorf("projections: %w: projection %q: Codec is required", ErrInvalidProjection, p.Name)
	case p.Apply == nil:
		return fmt.Errorf("projections: %w: projection %q: Apply is required", ErrInvalidProjection, p.Name)
	case p.Query.IsEmpty():
		return fmt.Errorf("projections: %w: projection %q: Query matches nothing (use eventstore.AllEvents() for every event)", ErrInvalidProjection, p.Name)
	case p.BatchSize < 0 || p.BatchSize > MaxBatchSize:
		return fmt.Errorf("projections: %w: projection %q: BatchSize must be 0 (the default) to %d, got %d", ErrInvalidProjection, p.Name, MaxBatchSize, p.BatchSize)
	}
	if _, dup := r.entries[p.Name]; dup {
		return fmt.Errorf("projections: %w: projection %q registered twice", ErrInvalidProjection, p.Name)
	}
	e := &entry{
		name:      p.Name,
		query:     p.Query,
		batchSize: p.BatchSize,
		key:       leaseKey(p.Name),
		apply: func(ctx context.Context, tx pgx.Tx, raws []eventstore.RawRecord) (err error) {
			// A panic in the codec or in Apply fails the batch like an
			// error (retried, then shown stuck), instead of ending the
			// process and every other projection in it with the batch.
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: string(debug.Stack())}
				}
			}()
			records, err := eventstore.Decode(p.Codec, raws)
			if err != nil {
				return err
			}
			return p.Apply(ctx, tx, records)
		},
	}
	if p.Reset != nil {
		e.reset = p.Reset
	}
	r.entries[p.Name] = e
	r.order = append(r.order, p.Name)
	return nil
}

// Names lists the registered projections in registration order.
func (r *Registry) Names() []string { return slices.Clone(r.order) }

// Info describes a registered projection, for listings such as
// `worker spec`.
type Info struct {
	Name string `json:"name"`
	// Query is the projection's query as eventstore.Query.String renders it.
	Query string `json:"query"`
	// BatchSize is the projection's own batch size, 0 for the default.
	BatchSize int `json:"batch_size,omitempty"`
	// Resettable is set when the projection has a Reset function, that is
	// when it can be reset and rebuilt.
	Resettable bool `json:"resettable"`
}

// Infos describes the registered projections in registration order.
func (r *Registry) Infos() []Info {
	out := make([]Info, 0, len(r.order))
	for _, n := range r.order {
		e := r.entries[n]
		out = append(out, Info{Name: n, Query: e.query.String(), BatchSize: e.batchSize, Resettable: e.reset != nil})
	}
	return out
}

func (r *Registry) lookup(name string) (*entry, error) {
	e, ok := r.entries[name]
	if !ok {
		return nil, fmt.Errorf("projections: %w: %q (registered: %v)", ErrUnknownProjection, name, r.order)
	}
	return e, nil
}

// leaseKey derives the second half of a projection's advisory lock key
// from its name: 31 bits, so that it reads the same as int4 and as the oid
// pg_locks shows. Two names with the same key share one lease, which only
// makes them run on the same replica.
func leaseKey(name string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int32(h.Sum32() & 0x7fffffff)
}
