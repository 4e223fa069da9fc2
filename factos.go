// Package factos is the front door of factos for Go: NewClient wires an
// event store, its River outbox, the River client that runs the reactors'
// reactions and effects, the sequencer of ordered effects and, when given
// a Temporal client, the effects that start and signal workflows, in the
// one order that works, the way river.NewClient does for River.
//
// The order matters and is easy to get wrong by hand: River takes its
// queues when the client is created, so the registry must be complete
// first; the outbox must be installed in the store's batch hooks before
// the first dispatch, or facts commit without their reaction jobs; the
// reaction workers read records through the store, so they are added
// after it and before the client starts; and effects with an ordering key
// wait forever unless the sequencer runs beside the client. A Client does
// all of it:
//
//	reg := reactors.NewRegistry(nil)
//	// reactors.AddReactor(reg, ...), reactors.AddEffect(reg, ...)
//	client, err := factos.NewClient(pool, reg, nil)
//	...
//	if err := client.Start(ctx); err != nil { ... }
//	defer client.Stop(context.WithoutCancel(ctx))
//	client.Store().Dispatch(...) // or eventstore.Dispatch(ctx, client.Store(), ...)
//
// A process that only dispatches (a web handler, a CLI) creates the same
// Client and never starts it: its dispatches enqueue the reaction jobs
// that the workers' processes run. factosfx, the worker binary, the test
// kit and the benchmarks all wire through NewClient.
package factos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// Default numbers of workers per queue. River's producer fetches at most
// as many jobs as it has free workers, and at most once per FetchCooldown,
// so a queue runs at most workers/cooldown jobs a second: 10 workers at
// the worker's 10ms cooldown capped each queue at 1,000 jobs a second,
// below what two cores dispatch (docs/benchmarks.md, "From commit to
// effect": 907 effects/s with 10 workers, 1,451/s with 50, in one run).
// A worker is a goroutine; it holds a database connection only while its
// job uses one, so the pool, not the worker count, bounds the load on the
// database.
const (
	DefaultReactionWorkers = 50
	DefaultEffectWorkers   = 50
)

// Config configures a Client. The zero value (or nil) is usable.
type Config struct {
	// Store configures the event store. The outbox is appended to its
	// BatchHooks. Default: eventstore's defaults.
	Store *eventstore.Config

	// Outbox configures the outbox that enqueues reaction jobs in the
	// dispatch transaction. Default: outbox's defaults.
	Outbox *outbox.Config

	// River configures the River client. The registry's queues are added
	// to its Queues and the registry's workers to its Workers, so that the
	// application's own jobs can run on the same client (a queue named in
	// both keeps the application's QueueConfig); every other field is used
	// as given. Default: River's defaults, logging to Logger.
	River *river.Config

	// ReactionWorkers and EffectWorkers are the goroutines per reaction
	// queue and per effect queue. Defaults: DefaultReactionWorkers,
	// DefaultEffectWorkers.
	ReactionWorkers int
	EffectWorkers   int

	// Logger receives River's log when River has none. Default: discard.
	Logger *slog.Logger

	// Workflows, when set, lets reactors start and signal Temporal
	// workflows: NewClient registers the built-in effects
	// (temporaleffects.Add) on the registry before it takes its queues.
	// Typically temporaleffects.Adapter{Client: temporalClient, TaskQueue:
	// q}. Default: none (no Temporal effects, no Temporal connection).
	Workflows temporaleffects.Workflows
	// WorkflowEffects configures the built-in Temporal effects. Default:
	// temporaleffects' defaults.
	WorkflowEffects *temporaleffects.Opts
}

// ErrInvalidConfig is returned (wrapped) by NewClient for a configuration
// it cannot use; nothing has been created then.
var ErrInvalidConfig = errors.New("factos: invalid configuration")

// Client is a wired event store and River client. Create it with
// NewClient; Start and Stop run the workers.
type Client struct {
	store *eventstore.Store
	river *river.Client[pgx.Tx]
	reg   *reactors.Registry
	works bool
}

// NewClient wires reg (complete: reactors and effects added after this
// call are not run) to an event store on pool with the outbox installed,
// and to a River client whose queues and workers run reg's reactions and
// effects.
func NewClient(pool *pgxpool.Pool, reg *reactors.Registry, cfg *Config) (*Client, error) {
	if pool == nil || reg == nil {
		return nil, fmt.Errorf("%w: a pool and a registry are required", ErrInvalidConfig)
	}
	if reg.Sequencer() != nil {
		// Its workers already run (or will) with another store and River
		// client; a second wiring would take its sequencer from the first.
		return nil, fmt.Errorf("%w: the registry is already wired to a client; create a registry per client", ErrInvalidConfig)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.ReactionWorkers < 0 || cfg.EffectWorkers < 0 {
		return nil, fmt.Errorf("%w: ReactionWorkers and EffectWorkers must not be negative", ErrInvalidConfig)
	}
	reactionWorkers, effectWorkers := cfg.ReactionWorkers, cfg.EffectWorkers
	if reactionWorkers == 0 {
		reactionWorkers = DefaultReactionWorkers
	}
	if effectWorkers == 0 {
		effectWorkers = DefaultEffectWorkers
	}
	rc := river.Config{}
	if cfg.River != nil {
		rc = *cfg.River
	}
	if len(rc.Queues) > 0 && rc.Workers == nil {
		return nil, fmt.Errorf("%w: River.Queues without River.Workers: the queues' jobs would have no worker", ErrInvalidConfig)
	}
	if rc.Logger == nil {
		rc.Logger = cfg.Logger
		if rc.Logger == nil {
			rc.Logger = slog.New(slog.DiscardHandler)
		}
	}

	// 1. The effects that reach Temporal, then the queues: River fixes
	// them when the client is created.
	if cfg.Workflows != nil {
		if err := temporaleffects.Add(reg, cfg.Workflows, cfg.WorkflowEffects); err != nil {
			return nil, fmt.Errorf("error registering the Temporal effects: %w", err)
		}
	}
	workers := rc.Workers
	if workers == nil {
		workers = river.NewWorkers()
	}
	queues := maps.Clone(rc.Queues)
	if queues == nil {
		queues = map[string]river.QueueConfig{}
	}
	for name, q := range reg.Queues(reactionWorkers, effectWorkers) {
		if _, ok := queues[name]; !ok {
			queues[name] = q
		}
	}
	works := len(queues) > 0
	rc.Queues, rc.Workers = nil, nil
	if works {
		rc.Queues, rc.Workers = queues, workers
	}
	rv, err := river.NewClient(riverpgxv5.New(pool), &rc)
	if err != nil {
		return nil, fmt.Errorf("error creating the River client: %w", err)
	}
	// 2. The outbox, in the store's hooks before any dispatch.
	ob, err := reg.Outbox(cfg.Outbox)
	if err != nil {
		return nil, err
	}
	sc := cfg.Store.WithDefaults()
	sc.BatchHooks = append(sc.BatchHooks, ob)
	store, err := eventstore.New(pool, sc)
	if err != nil {
		return nil, err
	}
	// 3. The workers, which read records through the store; River reads
	// its workers when it starts, so this is still in time.
	if err := reg.AddWorkers(workers, store); err != nil {
		return nil, err
	}
	return &Client{store: store, river: rv, reg: reg, works: works}, nil
}

// Store is the event store; its dispatches enqueue the reaction jobs of
// the records they append, in their transaction.
func (c *Client) Store() *eventstore.Store { return c.store }

// River is the River client: insert your own jobs with it, or mount River
// UI on it.
func (c *Client) River() *river.Client[pgx.Tx] { return c.river }

// Registry is the registry of reactors and effects the client runs.
func (c *Client) Registry() *reactors.Registry { return c.reg }

// Works reports whether the client has work to run: false when neither
// the registry nor Config.River has a queue, and Start then does nothing.
func (c *Client) Works() bool { return c.works }

// Start starts the River client's workers and the sequencer that releases
// effects with an ordering key; ctx bounds their life as in
// river.Client.Start. Without reactors and effects it does nothing. The
// schema must be migrated (migrations.Up).
func (c *Client) Start(ctx context.Context) error {
	if !c.works {
		return nil
	}
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("error starting River: %w", err)
	}
	if err := c.reg.Sequencer().Start(ctx); err != nil {
		stopErr := c.river.Stop(context.WithoutCancel(ctx))
		return errors.Join(fmt.Errorf("error starting the sequencer: %w", err), stopErr)
	}
	return nil
}

// HardStopTimeout bounds how long Stop waits for cancelled jobs to return
// once its context has ended.
const HardStopTimeout = 10 * time.Second

// Stop stops fetching jobs and waits for the running ones until ctx ends;
// then it cancels them (river.Client.StopAndCancel) and waits up to
// HardStopTimeout more, returning ctx's error. The sequencer stops after
// the workers: the effects they complete last still release their keys'
// next ones for the next process.
func (c *Client) Stop(ctx context.Context) error {
	if !c.works {
		return nil
	}
	err := c.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), HardStopTimeout)
		defer cancel()
		err = errors.Join(err, c.river.StopAndCancel(hard))
	}
	return errors.Join(err, c.reg.Sequencer().Stop(context.WithoutCancel(ctx)))
}
