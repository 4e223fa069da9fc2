package factosfx

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// NewTemporalClient returns a lazy Temporal client, or nil when Temporal
// is disabled. Lazy, so that the process starts (and reports itself not
// ready) while Temporal is down, instead of crash-looping.
//
// The client reports the Temporal SDK's metrics into the process's
// Prometheus registry, and, when tracing is on, traces workflows and
// activities with Temporal's OpenTelemetry interceptor, which carries the
// trace context through Temporal's headers: a workflow's activity, the
// dispatch it runs and everything after join the workflow's trace.
func NewTemporalClient(lc fx.Lifecycle, cfg *Config, m *Metrics, tr *Tracing, l *slog.Logger) (client.Client, error) {
	if !cfg.TemporalEnabled {
		return nil, nil
	}
	opts, err := TemporalClientOptions(cfg, l)
	if err != nil {
		return nil, err
	}
	if err := instrumentTemporal(&opts, m, tr, l); err != nil {
		return nil, err
	}
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, fmt.Errorf("error creating the Temporal client: %w", err)
	}
	lc.Append(fx.StopHook(c.Close))
	return c, nil
}

// NewReactorRegistry registers the built-in Temporal effects (when
// Temporal is enabled) and the domain's reactors.
func NewReactorRegistry(cfg *Config, domain Domain, pool *pgxpool.Pool, m *Metrics, tr *Tracing, tc client.Client, l *slog.Logger) (*reactors.Registry, error) {
	reg := reactors.NewRegistry(&reactors.Config{Metrics: m.Reactors, Logger: l, TracerProvider: tr.Provider})
	if tc != nil {
		if err := temporaleffects.Add(reg, temporaleffects.Adapter{Client: tc, TaskQueue: cfg.TemporalTaskQueue}, nil); err != nil {
			return nil, err
		}
	}
	if domain.Reactors != nil {
		if err := domain.Reactors(reg, DomainEnv{Pool: pool, Temporal: tc != nil}); err != nil {
			return nil, fmt.Errorf("error registering reactors: %w", err)
		}
	}
	return reg, nil
}

// River is the River client and the workers it runs.
type River struct {
	Client  *river.Client[pgx.Tx]
	Workers *river.Workers
	// Works is false when no reactor or effect is registered: the client
	// then only inserts.
	Works bool

	// reg's sequencer runs with the client when it works.
	reg *reactors.Registry
}

// Sequencer is the sequencer of the registry's ordered effects: the
// Runner starts it with the client and stops it after the client. Nil
// until NewStore has added the workers.
func (r *River) Sequencer() *reactors.Sequencer {
	if r.reg == nil {
		return nil
	}
	return r.reg.Sequencer()
}

// NewRiver creates the River client for the registry's queues. Its workers
// are added by NewStore, which River allows until the client starts.
func NewRiver(cfg *Config, pool *pgxpool.Pool, reg *reactors.Registry, l *slog.Logger) (*River, error) {
	workers := river.NewWorkers()
	queues := reg.Queues(cfg.ReactionWorkers, cfg.EffectWorkers)
	rc := &river.Config{Logger: l.With("component", "river"), JobTimeout: cfg.JobTimeout, RescueStuckJobsAfter: cfg.RescueAfter, FetchCooldown: cfg.FetchCooldown,
		DiscardedJobRetentionPeriod: cfg.DiscardedJobRetention, CancelledJobRetentionPeriod: cfg.CancelledJobRetention}
	if len(queues) > 0 {
		rc.Queues, rc.Workers = queues, workers
	}
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("error creating the River client: %w", err)
	}
	return &River{Client: c, Workers: workers, Works: len(queues) > 0, reg: reg}, nil
}

// NewStore creates the event store with the outbox installed, and gives
// the reactor workers the store they load records from.
func NewStore(cfg *Config, pool *pgxpool.Pool, reg *reactors.Registry, rv *River, m *Metrics, tr *Tracing, l *slog.Logger) (*eventstore.Store, error) {
	ob, err := reg.Outbox(&outbox.Config{NotifyInterval: cfg.FetchCooldown})
	if err != nil {
		return nil, err
	}
	store, err := eventstore.New(pool, &eventstore.Config{
		LockStrategy:   cfg.LockStrategy,
		BatchHooks:     []eventstore.BatchHook{ob},
		Observer:       m.ObserveDispatch,
		TracerProvider: tr.Provider,
		Logger:         l.With("component", "eventstore"),
	})
	if err != nil {
		return nil, err
	}
	if err := reg.AddWorkers(rv.Workers, store); err != nil {
		return nil, err
	}
	return store, nil
}

// NewProjections registers the domain's projections and returns their
// client, which the Runner starts once the schema is current.
func NewProjections(cfg *Config, domain Domain, store *eventstore.Store, m *Metrics, l *slog.Logger) (*projections.Client, error) {
	reg, err := domain.ProjectionRegistry(DomainEnv{Pool: store.Pool(), Temporal: cfg.TemporalEnabled})
	if err != nil {
		return nil, err
	}
	return projections.New(store, reg, ProjectionsConfig(cfg, m, l))
}

// ProjectionsConfig is the projections' configuration from the worker's.
func ProjectionsConfig(cfg *Config, m *Metrics, l *slog.Logger) *projections.Config {
	pc := &projections.Config{
		BatchSize:     cfg.ProjectionBatchSize,
		PollInterval:  cfg.ProjectionPollInterval,
		LeaseInterval: cfg.ProjectionLeaseInterval,
		Logger:        l.With("component", "projections"),
	}
	if m != nil {
		pc.Metrics = m.Projections
	}
	return pc
}

// NewCommandCleaner returns the cleaner of the command ledger, which the
// Runner starts once the schema is current.
func NewCommandCleaner(cfg *Config, store *eventstore.Store, l *slog.Logger) (*eventstore.CommandCleaner, error) {
	return eventstore.NewCommandCleaner(store, &eventstore.CommandCleanerConfig{
		Retention: cfg.CommandIDRetention,
		Logger:    l.With("component", "command-cleaner"),
	})
}

// NewCommandRegistry registers the domain's commands.
func NewCommandRegistry(store *eventstore.Store, domain Domain) (*activities.Registry, error) {
	reg := activities.NewRegistry(store, &activities.Config{DomainErrors: domain.DomainErrors})
	if domain.Commands != nil {
		if err := domain.Commands(reg); err != nil {
			return nil, fmt.Errorf("error registering commands: %w", err)
		}
	}
	if len(reg.Commands()) == 0 && domain.Workflows != nil {
		return nil, errors.New("the domain registers workflows but no commands")
	}
	return reg, nil
}
