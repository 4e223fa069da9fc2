package factosfx

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/factos-go/factos"
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

// NewReactorRegistry registers the domain's reactors; NewClient adds the
// built-in Temporal effects when Temporal is enabled.
func NewReactorRegistry(cfg *Config, domain Domain, pool *pgxpool.Pool, m *Metrics, tr *Tracing, tc client.Client, l *slog.Logger) (*reactors.Registry, error) {
	reg := reactors.NewRegistry(&reactors.Config{Metrics: m.Reactors, Logger: l, TracerProvider: tr.Provider, ReactionBatchSize: cfg.ReactionBatchSize})
	if domain.Reactors != nil {
		if err := domain.Reactors(reg, DomainEnv{Pool: pool, Temporal: tc != nil}); err != nil {
			return nil, fmt.Errorf("error registering reactors: %w", err)
		}
	}
	return reg, nil
}

// NewClient wires the event store, its outbox, the River client that runs
// the registry's reactions and effects, and the sequencer of ordered
// effects through the front door (factos.NewClient), with the effects
// that start and signal workflows when Temporal is enabled. The Runner
// starts it once the schema is current.
func NewClient(cfg *Config, pool *pgxpool.Pool, reg *reactors.Registry, tc client.Client, m *Metrics, tr *Tracing, l *slog.Logger) (*factos.Client, error) {
	var wf temporaleffects.Workflows
	if tc != nil {
		wf = temporaleffects.Adapter{Client: tc, TaskQueue: cfg.TemporalTaskQueue}
	}
	return factos.NewClient(pool, reg, &factos.Config{
		Workflows: wf,
		Store: &eventstore.Config{
			LockStrategy:   cfg.LockStrategy,
			Observer:       m.ObserveDispatch,
			TracerProvider: tr.Provider,
			Logger:         l.With("component", "eventstore"),
		},
		Outbox: &outbox.Config{NotifyInterval: cfg.FetchCooldown},
		River: &river.Config{Logger: l.With("component", "river"), JobTimeout: cfg.JobTimeout,
			RescueStuckJobsAfter: cfg.RescueAfter, FetchCooldown: cfg.FetchCooldown,
			DiscardedJobRetentionPeriod: cfg.DiscardedJobRetention, CancelledJobRetentionPeriod: cfg.CancelledJobRetention},
		ReactionWorkers: cfg.ReactionWorkers,
		EffectWorkers:   cfg.EffectWorkers,
	})
}

// NewStore is the client's event store.
func NewStore(c *factos.Client) *eventstore.Store { return c.Store() }

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
