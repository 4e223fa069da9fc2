package factosfx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/fx"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/projections"
)

// Runner starts River (with the sequencer of ordered effects), the
// projections, the command ledger cleaner and the Temporal worker once the
// database is reachable and migrated, and stops them gracefully.
type Runner struct {
	cfg    *Config
	log    *slog.Logger
	pool   *pgxpool.Pool
	store  *eventstore.Store
	client *factos.Client
	tc     client.Client
	cmds   *activities.Registry
	proj   *projections.Client
	clean  *eventstore.CommandCleaner
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
func NewRunner(lc fx.Lifecycle, sd fx.Shutdowner, cfg *Config, l *slog.Logger, pool *pgxpool.Pool, store *eventstore.Store, fc *factos.Client,
	tc client.Client, cmds *activities.Registry, proj *projections.Client, clean *eventstore.CommandCleaner, domain Domain, ready *Readiness) *Runner {
	r := &Runner{cfg: cfg, log: l, pool: pool, store: store, client: fc, tc: tc, cmds: cmds, proj: proj, clean: clean, domain: domain, ready: ready, sd: sd}
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

// start waits for the database, its migrations and Temporal, and starts
// the workers. It gives up after STARTUP_TIMEOUT and shuts the process
// down with exit code 1: a worker that cannot start says so and exits
// (an orchestrator then restarts it with a back-off) instead of waiting
// silently forever. ctx is cancelled when the process stops.
func (r *Runner) start(ctx context.Context) {
	defer close(r.done)
	w := startWait{r: r, ctx: ctx, began: time.Now()}
	if r.cfg.StartupTimeout > 0 {
		var cancel context.CancelFunc
		w.ctx, cancel = context.WithTimeout(ctx, r.cfg.StartupTimeout)
		defer cancel()
	}
	if !r.waitForMigrations(&w) {
		return
	}
	if !r.checkLockStrategy(&w) {
		return
	}
	if r.client.Works() {
		// River's workers and the sequencer that releases the ordered
		// effects they run, together.
		cancel := r.startOwn("River", r.client.Start)
		if cancel == nil {
			return
		}
		r.mu.Lock()
		r.riverRun = cancel
		r.mu.Unlock()
	}
	r.ready.set(componentRiver, true)
	r.log.Info("River started", "works", r.client.Works())

	// The projections take their leases in the background.
	cancelProj := r.startOwn("projections", r.proj.Start)
	if cancelProj == nil {
		return
	}
	r.mu.Lock()
	r.projRun = cancelProj
	r.mu.Unlock()
	r.log.Info("projections started", "projections", r.proj.Registry().Names())

	// Every worker runs the command ledger cleaner; an advisory lock lets
	// one delete at a time.
	if err := r.clean.Start(ctx); err != nil {
		r.log.Error("the command ledger cleaner did not start; shutting down", "error", err)
		_ = r.sd.Shutdown(fx.ExitCode(1))
		return
	}

	if r.tc == nil {
		return
	}
	tw := worker.New(r.tc, r.cfg.TemporalTaskQueue, worker.Options{
		WorkerStopTimeout: r.cfg.ShutdownTimeout,
		// A worker that cannot go on (its namespace deleted, say) ends the
		// process, so that the orchestrator restarts it visibly.
		OnFatalError: func(err error) {
			r.log.Error("Temporal worker failed; shutting down", "error", err)
			_ = r.sd.Shutdown(fx.ExitCode(1))
		},
	})
	r.cmds.Activities().Register(tw)
	if r.domain.Workflows != nil {
		r.domain.Workflows(tw)
	}
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := tw.Start()
		if err == nil {
			break
		}
		err = fmt.Errorf("cannot start the Temporal worker at %s (namespace %q): %w. Is the Temporal server running, and are TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE right?",
			r.cfg.TemporalAddress, r.cfg.TemporalNamespace, err)
		if !w.retry("Temporal", err, backoff) {
			return
		}
	}
	r.mu.Lock()
	r.tworker = tw
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
func (r *Runner) waitForMigrations(w *startWait) bool {
	for {
		ctx, cancel := context.WithTimeout(w.ctx, PingTimeout)
		st, err := migrations.ReadStatus(ctx, r.pool, r.domain.MigrationConfig(nil))
		err = explainPoolError(ctx, r.pool, err)
		cancel()
		switch {
		case err == nil && st.Current():
			r.ready.set(componentMigrations, true)
			return true
		case err == nil:
			err = fmt.Errorf("migrations %v are pending: run `worker migrate` (the Helm chart runs it as a hook)", st.Pending())
			if !w.retry("migrations", err, 2*time.Second) {
				return false
			}
		default:
			if !w.retry("the database", err, 2*time.Second) {
				return false
			}
		}
	}
}

// checkLockStrategy refuses to start a worker whose LOCK_STRATEGY differs
// from the one the database records: its locks would not conflict with the
// other writers', and the consistency guarantee would be lost silently.
func (r *Runner) checkLockStrategy(w *startWait) bool {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := r.store.CheckLockStrategy(w.ctx)
		if err == nil {
			return true
		}
		if errors.Is(err, eventstore.ErrStrategyMismatch) {
			r.log.Error("refusing to start: "+err.Error(), "variable", "LOCK_STRATEGY")
			_ = r.sd.Shutdown(fx.ExitCode(1))
			return false
		}
		if !w.retry("the recorded lock strategy", err, backoff) {
			return false
		}
	}
}

// startWait is the start sequence's patience: it logs what the worker
// waits for (at once, then every 30s or when the reason changes) and
// gives up at the STARTUP_TIMEOUT deadline.
type startWait struct {
	r       *Runner
	ctx     context.Context // ends at the deadline or when the process stops
	began   time.Time
	lastLog time.Time
	lastMsg string
}

// retry logs why the worker waits for what, sleeps for backoff, and
// reports whether to try again: false when the process stops or the
// deadline has passed (then it asks the process to exit with code 1).
func (w *startWait) retry(what string, err error, backoff time.Duration) bool {
	// An attempt cut short by the deadline says only that; the reason
	// worth reporting is the one before it.
	if msg := err.Error(); w.ctx.Err() == nil && (msg != w.lastMsg || time.Since(w.lastLog) >= 30*time.Second) {
		w.lastMsg, w.lastLog = msg, time.Now()
		args := []any{"error", msg, "retry_in", backoff.String()}
		if dl, ok := w.ctx.Deadline(); ok {
			args = append(args, "gives_up_in", time.Until(dl).Round(time.Second).String())
		}
		w.r.log.Warn("waiting for "+what, args...)
	}
	select {
	case <-w.ctx.Done():
	case <-time.After(backoff):
		return true
	}
	if errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
		reason := w.lastMsg
		if reason == "" {
			reason = err.Error()
		}
		w.r.log.Error("giving up: not started within STARTUP_TIMEOUT; exiting", "startup_timeout", w.r.cfg.StartupTimeout.String(),
			"waiting_for", what, "error", reason, "waited", time.Since(w.began).Round(time.Second).String())
		_ = w.r.sd.Shutdown(fx.ExitCode(1))
	}
	return false
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
			// Running jobs still running at SHUTDOWN_TIMEOUT are
			// cancelled (factos.Client.Stop); the sequencer stops after.
			if riverErr = r.client.Stop(ctx); riverErr != nil {
				r.log.Warn("River jobs did not finish in time; they were cancelled", "error", riverErr)
			}
		})
	}
	// The cleaner stops beside the others, not after them: they may use
	// all of SHUTDOWN_TIMEOUT, and it would then get an expired context
	// and warn of a cleaner that was not late.
	wg.Go(func() {
		if err := r.clean.Stop(ctx); err != nil {
			r.log.Warn("the command ledger cleaner did not stop in time", "error", err)
		}
	})
	wg.Wait()
	r.log.Info("workers stopped")
	if errors.Is(riverErr, context.DeadlineExceeded) {
		return nil // reported above; the pool closes next either way
	}
	return riverErr
}
