package factosfx

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/worker"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// Domain is what an application plugs into the worker.
type Domain struct {
	// Name appears in logs. Default: "app".
	Name string
	// Migrations are the application's own tables, versioned: `worker
	// migrate` applies them after the factos and River migrations, `worker
	// migrate status` lists them, and the worker waits for them like for
	// the store's before it starts. Optional.
	Migrations *migrations.Application
	// Reactors registers reactors and effect handlers. When Temporal is
	// enabled, the built-in workflow effects are registered before it runs.
	// Optional.
	Reactors func(reg *reactors.Registry, env DomainEnv) error
	// Projections registers the application's projections; `worker run`
	// runs them and `worker projections` operates them. It may be called
	// with a nil env.Pool (by `worker spec`), so it must not use the
	// database. Optional.
	Projections func(reg *projections.Registry, env DomainEnv) error
	// Commands registers the commands workflows may send. Optional.
	Commands func(reg *activities.Registry) error
	// Workflows registers the application's workflows. Optional.
	Workflows func(w worker.WorkflowRegistry)
	// DomainErrors names domain errors for Temporal (see activities.Config).
	DomainErrors map[string]error
}

// MigrationConfig is the migration configuration of the store, River and
// the domain's own line.
func (d Domain) MigrationConfig(l *slog.Logger) *migrations.Config {
	return &migrations.Config{Logger: l, Application: d.Migrations}
}

// name is Name, or its default.
func (d Domain) name() string {
	if d.Name == "" {
		return "app"
	}
	return d.Name
}

// ProjectionRegistry returns a registry holding the domain's projections.
func (d Domain) ProjectionRegistry(env DomainEnv) (*projections.Registry, error) {
	reg := projections.NewRegistry()
	if d.Projections != nil {
		if err := d.Projections(reg, env); err != nil {
			return nil, fmt.Errorf("error registering projections: %w", err)
		}
	}
	return reg, nil
}

// DomainEnv is what a domain's registration may use.
type DomainEnv struct {
	Pool *pgxpool.Pool
	// Temporal reports whether the Temporal effects are available.
	Temporal bool
}

// Module is every part of the worker. It needs a *Config and a Domain
// supplied (fx.Supply).
var Module = fx.Module("factos",
	fx.Provide(
		NewLogger,
		NewPool,
		NewMetrics,
		NewTracing,
		NewTemporalClient,
		NewReactorRegistry,
		NewClient,
		NewStore,
		NewProjections,
		NewCommandRegistry,
		NewCommandCleaner,
		NewReadiness,
		NewRunner,
	),
	fx.Invoke(
		func(l *slog.Logger, cfg *Config, d Domain) {
			l.Info("starting factos worker", append([]any{"domain", d.name()}, cfg.Redacted()...)...)
		},
		registerHTTP,
		func(*Runner) {}, // the runner starts River and Temporal
	),
)

// Options are the fx options of the worker process: Module, the supplied
// configuration and domain, fx logging through slog at debug level, and a
// stop timeout that leaves room for SHUTDOWN_TIMEOUT.
func Options(cfg *Config, domain Domain) fx.Option {
	return fx.Options(
		Module,
		fx.Supply(cfg, domain),
		fx.StopTimeout(cfg.ShutdownTimeout+10*time.Second),
		fx.WithLogger(func(l *slog.Logger) fxevent.Logger {
			fl := &fxevent.SlogLogger{Logger: l}
			fl.UseLogLevel(slog.LevelDebug)
			return fl
		}),
	)
}

// NewLogger returns the process logger: JSON (default) or text on stderr.
func NewLogger(cfg *Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
