package reactors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/outbox"
)

// Defaults.
const (
	// DefaultEffectQueue is the River queue of effect jobs.
	DefaultEffectQueue = "factos_effects"
	// DefaultEffectMaxAttempts bounds an effect's attempts before River
	// discards it (the dead letter).
	DefaultEffectMaxAttempts = 10
	// DefaultEffectTimeout bounds one attempt of an effect.
	DefaultEffectTimeout = time.Minute
	// DefaultReactionBatchSize is the most reaction jobs one reaction
	// handles in one transaction: its own and those it claims.
	DefaultReactionBatchSize = 100
	// MaxReactionBatchSize bounds ReactionBatchSize: the batch's records,
	// ledger rows and effect jobs go in one statement.
	MaxReactionBatchSize = 1000
)

// EffectKindPrefix starts the River kind of every effect job.
const EffectKindPrefix = "factos.effect."

// Config configures a Registry. The zero value is usable.
type Config struct {
	// Metrics, if set, records reaction lag, effect latency, retries and
	// discards. Default: none.
	Metrics *Metrics
	// Logger. Default: discard.
	Logger *slog.Logger
	// NotifyInterval is the shortest time between two notifications of
	// River's producers for one effect queue. Default:
	// outbox.DefaultNotifyInterval (10ms).
	NotifyInterval time.Duration
	// ReactionBatchSize is the most reaction jobs one reaction handles in
	// one transaction. While other reactions of the process are running
	// (River has a backlog to work through), a reaction claims up to
	// ReactionBatchSize-1 more jobs waiting in its queue, reacts to all
	// of their records and commits them with its own: one transaction, one
	// ledger statement and one completion for the lot instead of one each.
	// Negative or 1: every job alone; at most MaxReactionBatchSize.
	// Default: DefaultReactionBatchSize (100).
	ReactionBatchSize int
	// Sequencer configures the sequencer that releases ordered effects
	// (Registry.Sequencer). Default: see SequencerConfig.
	Sequencer SequencerConfig
	// TracerProvider gives the tracer of the reaction and effect spans.
	// Default: OpenTelemetry's global provider, which does nothing until
	// the application sets one.
	TracerProvider trace.TracerProvider
}

// Registry holds the named reactors and the effect handlers of an
// application, and registers their River workers.
//
// Register reactors and effects, then give the registry to
// factos.NewClient, which wires it to a store and a River client in the
// one order that works and starts and stops its workers and sequencer.
// The building blocks it uses — Outbox, Queues, AddWorkers, Sequencer —
// stay exported for wirings it does not cover (an outbox installed in a
// store on another pool than the workers', say): register reactors and
// effects; build the outbox with Outbox and install it as a store batch
// hook (eventstore.Config.BatchHooks); create the River client with a
// river.Workers and Queues(...); AddWorkers(workers, store); start the
// client and Sequencer() (which releases effects with an ordering key);
// stop both together. The workers need the store, so they are added last
// (River reads its workers when it starts).
type Registry struct {
	cfg      Config
	reactors map[string]*reactorEntry
	order    []string
	effects  map[string]*effectEntry
	notify   *riversql.Notifier
	store    *eventstore.Store
	seq      *Sequencer
	// reacting counts the reactions running in this process: a reaction
	// claims more jobs only while it is not alone.
	reacting atomic.Int64

	// fault, when set by tests, is called at each step of a reaction; an
	// error aborts the reaction there, as a crash would.
	fault func(step string, position int64) error
}

type reactorEntry struct {
	sub   outbox.Subscription
	react func(rec eventstore.RawRecord) ([]eventstore.PlannedEffect, error)
}

type effectEntry struct {
	kind        string
	queue       string
	maxAttempts int
	timeout     time.Duration
	onFailure   OnFailure
	handle      func(ctx context.Context, args *EffectArgs, attempt int) error
}

// NewRegistry returns an empty registry.
func NewRegistry(cfg *Config) *Registry {
	r := &Registry{reactors: map[string]*reactorEntry{}, effects: map[string]*effectEntry{}}
	if cfg != nil {
		r.cfg = *cfg
	}
	if r.cfg.Logger == nil {
		r.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if r.cfg.NotifyInterval == 0 {
		r.cfg.NotifyInterval = outbox.DefaultNotifyInterval
	}
	if r.cfg.ReactionBatchSize == 0 {
		r.cfg.ReactionBatchSize = DefaultReactionBatchSize
	}
	r.cfg.ReactionBatchSize = min(r.cfg.ReactionBatchSize, MaxReactionBatchSize)
	return r
}

// Reactor describes a named reactor.
type Reactor[E any] struct {
	// Name identifies the reactor in job kinds, ledgers and metrics. Keep it
	// stable: renaming a reactor makes replays treat history as new.
	// Letters, digits, '_', '-' and '.'. Required.
	Name string
	// Codec decodes the records it receives. Required.
	Codec eventstore.Codec[E]
	// Subscribe selects the records it receives. Required.
	Subscribe eventstore.Query
	// React plans effects for a record. It must be pure. Required.
	React eventstore.ReactFunc[E]
	// Queue, MaxAttempts and Priority of its reaction jobs. Defaults: see
	// outbox.Subscription.
	Queue       string
	MaxAttempts int
	Priority    int
}

// AddReactor registers a reactor. It returns an error for a missing field
// or a duplicate name.
func AddReactor[E any](r *Registry, rc Reactor[E]) error {
	switch {
	case rc.Codec == nil || rc.React == nil:
		return fmt.Errorf("reactors: reactor %q: Codec and React are required", rc.Name)
	case rc.Subscribe.IsEmpty():
		return fmt.Errorf("reactors: reactor %q: empty subscription", rc.Name)
	}
	if _, dup := r.reactors[rc.Name]; dup {
		return fmt.Errorf("reactors: reactor %q registered twice", rc.Name)
	}
	sub := outbox.Subscription{Reactor: rc.Name, Query: rc.Subscribe, Queue: rc.Queue, MaxAttempts: rc.MaxAttempts, Priority: rc.Priority}
	if err := sub.Validate(); err != nil {
		return fmt.Errorf("reactors: %w", err)
	}
	sub = sub.WithDefaults()
	r.reactors[rc.Name] = &reactorEntry{
		sub: sub,
		react: func(raw eventstore.RawRecord) (_ []eventstore.PlannedEffect, err error) {
			// A reactor that panics fails on this record alone, like one
			// that returns an error: the other reactors of its job, and
			// the jobs its reaction claimed, go on.
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("panic: %v", v)
					r.cfg.Logger.Error("reactors: reactor panicked", "reactor", rc.Name, "position", int64(raw.Position),
						"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				}
			}()
			ev, err := rc.Codec.Decode(raw)
			if err != nil {
				return nil, &eventstore.DecodeError{Position: raw.Position, Type: raw.Type, Version: raw.Version, Err: err}
			}
			return rc.React(eventstore.Record[E]{RawRecord: raw, Event: ev})
		},
	}
	r.order = append(r.order, rc.Name)
	return nil
}

// Effect is one effect as its handler receives it.
type Effect[A any] struct {
	// Kind of the effect.
	Kind string
	// Key is the effect's idempotency key, stable across retries and
	// replays: use it to make the handler's IO idempotent (an insert with
	// ON CONFLICT DO NOTHING, an Idempotency-Key header, a workflow id).
	Key string
	// Args as the reactor planned them.
	Args A
	// Reactor, Position and EventID say where the effect came from.
	Reactor  string
	Position eventstore.Position
	EventID  string
	// OrderingKey is the key whose sequence the effect runs in, if any:
	// no other effect of the key runs at the same time, and every earlier
	// one has finished.
	OrderingKey string
	// Attempt is 1 on the first try.
	Attempt int
}

// OnFailure says what an effect kind's failure for good (its job
// cancelled or discarded) does to the sequence of its ordering key.
// Effects without an ordering key ignore it.
type OnFailure int

const (
	// HaltSequence stops the key at the failed effect: the key's later
	// effects wait, visibly (pending jobs, state "failed" in
	// factos_effect_sequences), until an operator retries the effect
	// (from River UI, or RetryEffect) or skips it (SkipEffect). The
	// default: an effect that must follow another usually cannot do
	// without it.
	HaltSequence OnFailure = iota
	// ContinueSequence lets the key go on past the failed effect: for
	// effects the later ones do not depend on, such as notifications.
	ContinueSequence
)

func (f OnFailure) String() string {
	switch f {
	case HaltSequence:
		return "halt"
	case ContinueSequence:
		return "continue"
	}
	return fmt.Sprintf("OnFailure(%d)", int(f))
}

// EffectHandler performs one kind of effect.
type EffectHandler[A any] struct {
	// Kind matches eventstore.PlannedEffect.Kind. Letters, digits, '_', '-' and
	// '.'. Required.
	Kind string
	// Handle performs the effect. Return nil when done, an error to retry
	// with backoff, or Permanent(err) to give up at once. Required.
	Handle func(ctx context.Context, e Effect[A]) error
	// MaxAttempts before the job is discarded. Default: 10.
	MaxAttempts int
	// Timeout of one attempt. Default: 1 minute.
	Timeout time.Duration
	// Queue of its jobs. Default: DefaultEffectQueue.
	Queue string
	// OnFailure says whether the sequence of an ordering key halts at an
	// effect of this kind that fails for good (cancelled or discarded) or
	// goes on past it. It is recorded with each effect when planned.
	// Default: HaltSequence.
	OnFailure OnFailure
}

var kindPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// AddEffect registers an effect handler.
func AddEffect[A any](r *Registry, h EffectHandler[A]) error {
	switch {
	case !kindPattern.MatchString(h.Kind):
		return fmt.Errorf("reactors: effect kind %q must match %s", h.Kind, kindPattern)
	case h.Handle == nil:
		return fmt.Errorf("reactors: effect %q: Handle is required", h.Kind)
	case h.OnFailure != HaltSequence && h.OnFailure != ContinueSequence:
		return fmt.Errorf("reactors: effect %q: unknown %v", h.Kind, h.OnFailure)
	}
	if _, dup := r.effects[h.Kind]; dup {
		return fmt.Errorf("reactors: effect %q registered twice", h.Kind)
	}
	e := &effectEntry{kind: h.Kind, queue: h.Queue, maxAttempts: h.MaxAttempts, timeout: h.Timeout, onFailure: h.OnFailure}
	if e.queue == "" {
		e.queue = DefaultEffectQueue
	}
	if e.maxAttempts == 0 {
		e.maxAttempts = DefaultEffectMaxAttempts
	}
	if e.timeout == 0 {
		e.timeout = DefaultEffectTimeout
	}
	e.handle = func(ctx context.Context, a *EffectArgs, attempt int) error {
		var args A
		if len(a.Args) > 0 {
			if err := json.Unmarshal(a.Args, &args); err != nil {
				return Permanent(fmt.Errorf("error decoding args of effect %s: %w", a.Key, err))
			}
		}
		return h.Handle(ctx, Effect[A]{Kind: a.EffectKind, Key: a.Key, Args: args, Reactor: a.Reactor,
			Position: eventstore.Position(a.Position), EventID: a.EventID, OrderingKey: a.OrderingKey, Attempt: attempt})
	}
	r.effects[h.Kind] = e
	return nil
}

// Subscriptions are the outbox subscriptions of the registered reactors.
func (r *Registry) Subscriptions() []outbox.Subscription {
	out := make([]outbox.Subscription, 0, len(r.order))
	for _, name := range r.order {
		out = append(out, r.reactors[name].sub)
	}
	return out
}

// Outbox returns an outbox for the registered reactors, to be installed as
// a store batch hook (eventstore.Config.BatchHooks).
func (r *Registry) Outbox(cfg *outbox.Config) (*outbox.Outbox, error) {
	return outbox.New(r.Subscriptions(), cfg)
}

// AddWorkers registers the River workers of every reactor and effect; the
// reaction workers load records from store. It fails if workers already has
// a worker for one of their kinds, or if the sequencer's configuration is
// invalid. It creates the registry's Sequencer.
func (r *Registry) AddWorkers(workers *river.Workers, store *eventstore.Store) (err error) {
	if store == nil {
		return errors.New("reactors: nil store")
	}
	// River reports a duplicate kind by panicking; turn that into an error
	// at the one place applications wire workers.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reactors: error adding workers: %v", p)
		}
	}()
	if len(r.order) > 0 {
		river.AddWorkerArgs(workers, outbox.ReactionArgs{}, &reactionWorker{reg: r, store: store})
	}
	var queues []string
	for _, e := range r.effects {
		river.AddWorkerArgs(workers, EffectArgs{EffectKind: e.kind}, &effectWorker{reg: r, entry: e})
		queues = append(queues, e.queue)
	}
	r.notify = riversql.NewNotifier(r.cfg.NotifyInterval, queues...)
	r.store = store
	seq, err := newSequencer(store, r.cfg.Sequencer, r.cfg.Logger)
	if err != nil {
		return err
	}
	r.seq = seq
	return nil
}

// Sequencer returns the sequencer that releases the registry's ordered
// effects, or nil before AddWorkers. Start it with the River client that
// runs the workers, and stop it with that client: without it, effects
// with an ordering key wait forever.
func (r *Registry) Sequencer() *Sequencer { return r.seq }

// Queues returns River queue configs for every queue the registry uses,
// with reactionWorkers and effectWorkers goroutines respectively.
func (r *Registry) Queues(reactionWorkers, effectWorkers int) map[string]river.QueueConfig {
	q := map[string]river.QueueConfig{}
	for _, name := range r.order {
		q[r.reactors[name].sub.Queue] = river.QueueConfig{MaxWorkers: reactionWorkers}
	}
	for _, e := range r.effects {
		if _, ok := q[e.queue]; !ok {
			q[e.queue] = river.QueueConfig{MaxWorkers: effectWorkers}
		}
	}
	return q
}

// ErrPermanent marks an effect error that retrying cannot fix.
var ErrPermanent = errors.New("permanent effect failure")

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as permanent: the effect job is cancelled at once
// instead of retried, with err recorded on the job.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}
