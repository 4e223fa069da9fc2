package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
)

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	cfg      *Config
	strategy *strategy
	tracer   trace.Tracer

	// strategyChecked is set once the database's recorded lock strategy
	// has been found equal to the store's (see checkStrategy).
	strategyChecked atomic.Bool
}

// New returns a store over pool. The schema must be migrated (see the
// migrations package). The store does not own the pool.
func New(pool *pgxpool.Pool, cfg *Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("eventstore: nil pool")
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("eventstore: invalid config: %w", err)
	}
	return &Store{pool: pool, cfg: c, strategy: newStrategy(c.LockStrategy, c.MaxLockKeys), tracer: c.tracer()}, nil
}

// Pool is the pool the store runs on.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// LockStrategy is the strategy the store was configured with.
func (s *Store) LockStrategy() LockStrategy { return s.cfg.LockStrategy }

// Limits are the input limits in force.
func (s *Store) Limits() Limits { return s.cfg.Limits }

// Hook runs inside a dispatch transaction after the events are appended
// and before the commit, with the records as they will be committed. An
// error rolls the whole dispatch back. Hooks must only use tx for database
// work, so that their writes commit or roll back with the events.
type Hook interface {
	AfterAppend(ctx context.Context, tx pgx.Tx, records []RawRecord) error
}

// BatchHook is a hook that costs no round trip of its own: it queues its
// statements in the batch that inserts the events (and commits them, when
// no Hook runs in between), after the insert. They run in the dispatch
// transaction; a statement's error rolls the dispatch back. The records'
// positions are known only to the database when the statements are queued:
// the statements find the appended events by their ids, which the store
// assigns before the insert (factos_events.id is unique). The outbox is a
// BatchHook.
type BatchHook interface {
	// QueueAfterAppend queues statements on b for the events being
	// appended. An error fails the dispatch before anything is sent.
	QueueAfterAppend(b *pgx.Batch, a Appending) error
}

// Appending is what a BatchHook knows of an append: its stream and its
// events, with their ids, types, tags and metadata as they will be stored.
type Appending struct {
	Stream string
	Events []EventData
	// CommandID is the dispatch's command id, if it has one.
	CommandID string
}

// HookFunc adapts a function to Hook.
type HookFunc func(ctx context.Context, tx pgx.Tx, records []RawRecord) error

// AfterAppend implements Hook.
func (f HookFunc) AfterAppend(ctx context.Context, tx pgx.Tx, records []RawRecord) error {
	return f(ctx, tx, records)
}

// DispatchInfo describes a finished dispatch or append, for Config.Observer.
type DispatchInfo struct {
	// Op is "dispatch" or "append".
	Op string
	// Outcome is one of "committed", "duplicate", "rejected", "conflict",
	// "invalid", "codec" or "error".
	Outcome  string
	Strategy LockStrategy
	Attempts int
	Events   int
	Duration time.Duration
	Err      error
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "committed"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrInvalidInput):
		return "invalid"
	case errors.Is(err, ErrDecode), errors.Is(err, ErrEncode):
		return "codec"
	}
	return "error"
}

func scanRecord(row pgx.CollectableRow) (RawRecord, error) {
	var r RawRecord
	var pos int64
	err := row.Scan(&pos, &r.ID, &r.Stream, &r.Revision, &r.Type, &r.Version, &r.Tags, &r.Metadata, &r.Data, &r.RecordedAt)
	r.Position = Position(pos)
	return r, err
}

// storeError wraps a database error, making sure a cancelled or expired
// context is visible to errors.Is even when the driver reports the failure
// in its own words.
func storeError(ctx context.Context, op string, err error) error {
	var se *StoreError
	if errors.As(err, &se) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return &StoreError{Op: op, Err: err}
}

// pgCode returns the SQLSTATE and constraint of a PostgreSQL error.
func pgCode(err error) (code, constraint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.ConstraintName
	}
	return "", ""
}
