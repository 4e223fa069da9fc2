// Package outbox turns committed records into River jobs inside the
// dispatch transaction that commits them.
//
// The Outbox is an eventstore.Hook: the store runs it after appending, on the
// dispatch's own pgx.Tx, and it inserts one reaction job per (record,
// subscription) with River's InsertManyTx. The jobs exist if and only if the
// events do: a rolled-back or rejected dispatch leaves no job, and a failed
// job insert fails the dispatch, which then writes nothing. There is no
// relay process and no polling of the event table.
//
// Subscriptions name a reactor and the records it wants (a query over types
// and tags). The reactors package registers the workers for these jobs;
// applications usually build subscriptions from a reactors.Registry.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/factos-go/factos/eventstore"
)

// Defaults.
const (
	// DefaultQueue is the River queue of reaction jobs.
	DefaultQueue = "factos_reactions"
	// DefaultMaxAttempts of a reaction job before River discards it.
	DefaultMaxAttempts = 25
)

// KindPrefix starts the River kind of every reaction job; the reactor's name
// follows, so River UI lists each reactor's jobs under its own kind.
const KindPrefix = "factos.reaction."

// ReactionArgs are the River job args of one reaction: which reactor, which
// record. They stay small and readable in River UI; the worker loads the
// record itself. Reactor and position make the job unique, so a replay does
// not enqueue a reaction that is already waiting or running.
type ReactionArgs struct {
	Reactor   string `json:"reactor" river:"unique"`
	Position  int64  `json:"position" river:"unique"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	Stream    string `json:"stream"`
}

// Kind implements river.JobArgs.
func (a ReactionArgs) Kind() string { return KindPrefix + a.Reactor }

// Subscription routes records to a reactor.
type Subscription struct {
	// Reactor names the reactor. It becomes part of the River kind, so it is
	// limited to letters, digits, '_', '-' and '.'. Required.
	Reactor string
	// Query selects the records the reactor receives, by type and tags.
	// Required (use eventstore.AllEvents for every record).
	Query eventstore.Query
	// Queue is the River queue of its jobs. Default: DefaultQueue.
	Queue string
	// MaxAttempts before River discards a job. Default: DefaultMaxAttempts.
	MaxAttempts int
	// Priority of its jobs, 1 (first) to 4. Default: 1.
	Priority int
}

// Inserter is the part of a River client the outbox uses. *river.Client[pgx.Tx]
// implements it; an insert-only client (no workers) is enough.
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Outbox is the eventstore.Hook that enqueues reaction jobs.
type Outbox struct {
	client Inserter
	subs   []Subscription
}

var reactorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// New returns an outbox that enqueues through client for subs.
func New(client Inserter, subs []Subscription) (*Outbox, error) {
	if client == nil {
		return nil, errors.New("outbox: nil River client")
	}
	seen := map[string]bool{}
	out := make([]Subscription, len(subs))
	for i, s := range subs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("outbox: subscription %d: %w", i, err)
		}
		if seen[s.Reactor] {
			return nil, fmt.Errorf("outbox: reactor %q subscribed twice", s.Reactor)
		}
		seen[s.Reactor] = true
		out[i] = s.WithDefaults()
	}
	return &Outbox{client: client, subs: out}, nil
}

// Validate reports a missing or malformed field.
func (s Subscription) Validate() error {
	switch {
	case !reactorName.MatchString(s.Reactor):
		return fmt.Errorf("reactor name %q must match %s", s.Reactor, reactorName)
	case s.Query.IsEmpty():
		return fmt.Errorf("reactor %q: empty query (use eventstore.AllEvents for every record)", s.Reactor)
	case s.MaxAttempts < 0 || s.Priority < 0 || s.Priority > 4:
		return fmt.Errorf("reactor %q: MaxAttempts must be >= 0 and Priority 0..4", s.Reactor)
	}
	return nil
}

// WithDefaults returns a copy with defaults filled in.
func (s Subscription) WithDefaults() Subscription {
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Priority == 0 {
		s.Priority = 1
	}
	return s
}

// Subscriptions returns the subscriptions with defaults filled in.
func (o *Outbox) Subscriptions() []Subscription { return append([]Subscription(nil), o.subs...) }

// Jobs returns the reaction jobs for records, in record order: one per
// (record, matching subscription).
func (o *Outbox) Jobs(records []eventstore.RawRecord) []river.InsertManyParams {
	var params []river.InsertManyParams
	for _, r := range records {
		for _, s := range o.subs {
			if s.Query.Matches(r.Type, r.Tags) {
				params = append(params, o.params(s, r))
			}
		}
	}
	return params
}

func (o *Outbox) params(s Subscription, r eventstore.RawRecord) river.InsertManyParams {
	return river.InsertManyParams{
		Args: ReactionArgs{Reactor: s.Reactor, Position: int64(r.Position), EventID: r.ID.String(), EventType: r.Type, Stream: r.Stream},
		InsertOpts: &river.InsertOpts{
			Queue:       s.Queue,
			MaxAttempts: s.MaxAttempts,
			Priority:    s.Priority,
			UniqueOpts:  river.UniqueOpts{ByArgs: true},
		},
	}
}

// Subscription returns the subscription of a reactor.
func (o *Outbox) Subscription(reactor string) (Subscription, bool) {
	for _, s := range o.subs {
		if s.Reactor == reactor {
			return s, true
		}
	}
	return Subscription{}, false
}

// Params is the job the outbox inserts for reactor's reaction to r. Replays
// use it to build exactly the job the outbox would have.
func (o *Outbox) Params(reactor string, r eventstore.RawRecord) (river.InsertManyParams, bool) {
	s, ok := o.Subscription(reactor)
	if !ok {
		return river.InsertManyParams{}, false
	}
	return o.params(s, r), true
}

// AfterAppend implements eventstore.Hook: it inserts the reaction jobs on
// the dispatch's transaction. An error fails (and rolls back) the dispatch.
func (o *Outbox) AfterAppend(ctx context.Context, tx pgx.Tx, records []eventstore.RawRecord) error {
	params := o.Jobs(records)
	if len(params) == 0 {
		return nil
	}
	if _, err := o.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("error inserting %d reaction jobs: %w", len(params), err)
	}
	return nil
}
