package factosfx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/fx"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/projections"
)

// Runner starts River, the projections and the Temporal worker once the
// database is reachable and migrated, and stops them gracefully.
type Runner struct {
	cfg    *Config
	log    *slog.Logger
	pool   *pgxpool.Pool
	store  *eventstore.Store
	river  *River
	tc     client.Client
	cmds   *activities.Registry
	proj   *projections.Client
	domain Domain
	ready  *Readiness
	sd     fx.Shutdowner

	cancelStart context.CancelFunc
	done        chan struct{} // closed when the start sequence has ended

	mu       sync.Mutex
	tworker  worker.Worker
	riverRun context.CancelFunc
	projRun  context.CancelFunc
}

// NewRunner registers the runner's start and stop hooks.
func NewRunner(lc fx.Lifecycle, sd fx.Shutdowner, cfg *Config, l *slog.Logger, pool *pgxpool.Pool, store *eventstore.Store, rv *River,
	tc client.Client, cmds *activities.Registry, proj *projections.Client, domain Domain, ready *Readiness) *Runner {
	r := &Runner{cfg: cfg, log: l, pool: pool, store: store, river: rv, tc: tc, cmds: cmds, proj: proj, domain: domain, ready: ready, sd: sd}
	lc.Append(fx.Hook{
		// Start returns at once: waiting for the database or Temporal here
		// would make fx give up on start-up. The sequence runs in the
		// background and /readyz reports its progress.
		OnStart: func(context.Context) error {
			ctx, cancel := context.WithCancel(context.Background())
			r.cancelStart, r.done = cancel, make(chan struct{})
			go r.start(ctx)
			return nil
		},
		OnStop: r.stop,
	})
	return r
}

func (r *Runner) start(ctx context.Context) {
	defer close(r.done)
	if !r.waitForMigrations(ctx) {
		return
	}
	if !r.checkLockStrategy(ctx) {
		return
	}
	if r.river.Works {
		cancel := r.startOwn("River", r.river.Client.Start)
		if cancel == nil {
			return
		}
		r.mu.Lock()
		r.riverRun = cancel
		r.mu.Unlock()
	}
	r.ready.set(componentRiver, true)
	r.log.Info("River started", "works", r.river.Works)

	// The projections take their leases in the background.
	cancelProj := r.startOwn("projections", r.proj.Start)
	if cancelProj == nil {
		return
	}
	r.mu.Lock()
	r.projRun = cancelProj
	r.mu.Unlock()
	r.log.Info("projections started", "projections", r.proj.Registry().Names())

	if r.tc == nil {
		return
	}
	w := worker.New(r.tc, r.cfg.TemporalTaskQueue, worker.Options{
		WorkerStopTimeout: r.cfg.ShutdownTimeout,
		// A worker that cannot go on (its namespace deleted, say) ends the
		// process, so that the orchestrator restarts it visibly.
		OnFatalError: func(err error) {
			r.log.Error("Temporal worker failed; shutting down", "error", err)
			_ = r.sd.Shutdown(fx.ExitCode(1))
		},
	})
	r.cmds.Activities().Register(w)
	if r.domain.Workflows != nil {
		r.domain.Workflows(w)
	}
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := w.Start()
		if err == nil {
			break
		}
		r.log.Warn("Temporal worker not started; retrying", "error", err, "address", r.cfg.TemporalAddress, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
	r.mu.Lock()
	r.tworker = w
	r.mu.Unlock()
	r.ready.set(componentTemporal, true)
	r.log.Info("Temporal worker started", "task_queue", r.cfg.TemporalTaskQueue, "namespace", r.cfg.TemporalNamespace)
}

// startOwn starts a component that runs until its context ends, on a
// context of its own: cancelling it is a hard stop, which only stop may
// decide (never fx's start context). When the component does not start,
// the process shuts down, and startOwn returns nil.
func (r *Runner) startOwn(name string, start func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	if err := start(ctx); err != nil {
		cancel()
		r.log.Error(name+" did not start; shutting down", "error", err)
		_ = r.sd.Shutdown(fx.ExitCode(1))
		return nil
	}
	return cancel
}

// waitForMigrations polls until the schema is current. A worker must not
// run against a schema it does not know.
func (r *Runner) waitForMigrations(ctx context.Context) bool {
	var lastLog time.Time
	for {
		st, err := migrations.ReadStatus(ctx, r.pool, nil)
		if err == nil && st.Current() {
			r.ready.set(componentMigrations, true)
			return true
		}
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			if err != nil {
				r.log.Warn("waiting for the database", "error", err)
			} else {
				r.log.Warn("waiting for migrations; run `worker migrate`", "pending", st.Pending())
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Second):
		}
	}
}

// checkLockStrategy refuses to start a worker whose LOCK_STRATEGY differs
// from the one the database records: its locks would not conflict with the
// other writers', and the consistency guarantee would be lost silently.
func (r *Runner) checkLockStrategy(ctx context.Context) bool {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := r.store.CheckLockStrategy(ctx)
		if err == nil {
			return true
		}
		if errors.Is(err, eventstore.ErrStrategyMismatch) {
			r.log.Error("refusing to start: "+err.Error(), "variable", "LOCK_STRATEGY")
			_ = r.sd.Shutdown(fx.ExitCode(1))
			return false
		}
		r.log.Warn("cannot read the recorded lock strategy; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

// stop stops taking work and lets running work finish: the Temporal worker,
// River and the projections stop in parallel, each waiting for its running
// activities, jobs or batches up to SHUTDOWN_TIMEOUT; jobs still running
// then are cancelled and River retries them later, and batches roll back
// and are applied again by the next runner.
func (r *Runner) stop(ctx context.Context) error {
	r.ready.stopping()
	r.cancelStart()
	<-r.done
	r.mu.Lock()
	tw, riverRun, projRun := r.tworker, r.riverRun, r.projRun
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, r.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var riverErr error
	if tw != nil {
		wg.Go(tw.Stop)
	}
	if projRun != nil {
		// Each runner finishes its batch and hands its lease back, so
		// that another replica takes over at once.
		wg.Go(func() {
			defer projRun()
			_ = r.proj.Stop(ctx)
		})
	}
	if riverRun != nil {
		wg.Go(func() {
			defer riverRun()
			if err := r.river.Client.Stop(ctx); err != nil {
				r.log.Warn("River jobs did not finish in time; cancelling them", "error", err)
				hardCtx, hardCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer hardCancel()
				riverErr = r.river.Client.StopAndCancel(hardCtx)
			}
		})
	}
	wg.Wait()
	r.log.Info("workers stopped")
	if errors.Is(riverErr, context.DeadlineExceeded) {
		return nil // reported above; the pool closes next either way
	}
	return riverErr
}
