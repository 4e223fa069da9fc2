package bench

import (
	"context"
	"fmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/baseline"
	"github.com/factos-go/factos/migrations"
)

// Pseudo-strategies of the disjoint scenario: the insert-only ceilings.
const (
	strategyCeiling   = "ceiling"
	strategyCeilingTx = "ceiling+tx"
)

// target is one database a scenario's strategy runs in: a pool traced for
// round trips, and a store whose Observer and Logger report into the
// window being measured.
type target struct {
	name     string // strategy or pseudo-strategy
	strategy eventstore.LockStrategy
	url      string
	drop     func() error
	pool     *pgxpool.Pool
	store    *eventstore.Store // nil for the ceilings
	codec    *eventstore.JSONCodec[tickets.Event]
	tracer   *tracer
	obs      *observer
	stmts    *statements
	closers  []func()

	// cells numbers the phases run here, so that every phase's commands
	// use names no earlier phase used.
	cells int
}

// openTarget migrates the database at url and opens a pool of maxConns
// connections and a store on it. It owns drop from then on.
func openTarget(ctx context.Context, cfg *Config, name, url string, drop func() error, maxConns int) (*target, error) {
	t := &target{name: name, url: url, drop: drop, codec: tickets.NewCodec(), tracer: &tracer{}, obs: &observer{}}
	fail := func(err error) (*target, error) {
		t.close()
		return nil, err
	}
	if err := migrate(ctx, url); err != nil {
		return fail(err)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fail(fmt.Errorf("error parsing database url: %w", err))
	}
	pc.MaxConns = int32(maxConns)
	pc.ConnConfig.Tracer = t.tracer
	if t.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return fail(fmt.Errorf("error opening pool: %w", err))
	}
	if name != strategyCeiling && name != strategyCeilingTx {
		t.strategy = eventstore.LockStrategy(name)
		var hooks []eventstore.BatchHook
		var tp trace.TracerProvider
		switch name {
		case strategyOutbox, strategyTracing:
			t.strategy = eventstore.LockKeys
			ob, err := outboxHook(t)
			if err != nil {
				return fail(err)
			}
			hooks = append(hooks, ob)
			if name == strategyTracing {
				sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				t.closers = append(t.closers, func() { _ = sdk.Shutdown(context.Background()) })
				tp = sdk
			}
		case strategyDirect, strategyTemporal, strategyTemporalLocal, strategyTemporalEager, strategyProjections:
			t.strategy = eventstore.LockKeys
		}
		storeCfg := &eventstore.Config{
			LockStrategy: t.strategy,
			MaxAttempts:  cfg.MaxAttempts,
			Observer:     t.obs.observe,
			Logger:       slog.New(retryHandler{}),
			BatchHooks:   hooks,
			// nil: the global provider, a no-op here.
			TracerProvider: tp,
		}
		if t.strategy == StrategySerializable {
			storeCfg = baseline.Serializable(storeCfg).(*eventstore.Config)
		}
		t.store, err = eventstore.New(t.pool, storeCfg)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.Statements {
		t.stmts = openStatements(ctx, url)
	}
	return t, nil
}

// keysTarget opens a target under keys, with maxConns connections, in a
// database of its own.
func (r *runner) keysTarget(ctx context.Context, maxConns int) (*target, error) {
	url, drop, err := r.cfg.Databases.Create(ctx)
	if err != nil {
		return nil, err
	}
	return openTarget(ctx, r.cfg, keys, url, drop, maxConns)
}

// migrate migrates the database at url through a pool of its own: Up holds
// one connection for its lock while goose and River use others, more than
// a one-client cell's pool has.
func migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("error opening pool: %w", err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool, nil); err != nil {
		return fmt.Errorf("error migrating: %w", err)
	}
	return nil
}

// close closes the pool and drops the database.
func (t *target) close() error {
	t.stmts.close()
	for _, c := range t.closers {
		c()
	}
	if t.pool != nil {
		t.pool.Close()
	}
	if t.drop != nil {
		return t.drop()
	}
	return nil
}

// observer receives the store's DispatchInfo and adds it to the window
// being measured. The Observer is called on the dispatching goroutine just
// before Dispatch returns, so a dispatch observed inside the window is the
// one the client counts inside it (up to the microseconds in between).
type observer struct {
	w atomic.Pointer[window]
}

// window is the measured span of a cell, as the observer sees it.
type window struct {
	start time.Time
	// closed is set when the window closes (its length depends on how
	// many commands it has counted: see runner.phase).
	closed     atomic.Bool
	dispatches atomic.Int64
	retries    atomic.Int64
	conflicts  atomic.Int64
}

func (o *observer) observe(info eventstore.DispatchInfo) {
	w := o.w.Load()
	if w == nil {
		return
	}
	if time.Now().Before(w.start) || w.closed.Load() {
		return
	}
	w.dispatches.Add(1)
	if info.Attempts > 1 {
		w.retries.Add(int64(info.Attempts - 1))
	}
	if info.Outcome == "conflict" {
		w.conflicts.Add(1)
	}
}

// retryHandler is the stores' slog handler: it counts the store's
// "retrying" lines by reason into the dispatch's own counter (the context
// the store logs with is the dispatch's), and drops everything else.
type retryHandler struct{}

// retryReasons is kept beside the trip counter in the dispatch's context.
type retryReasons struct {
	mu     sync.Mutex
	counts map[string]int64
}

type reasonsKey struct{}

func withReasons(ctx context.Context, r *retryReasons) context.Context {
	return context.WithValue(ctx, reasonsKey{}, r)
}

func (retryHandler) Enabled(context.Context, slog.Level) bool { return true }

func (retryHandler) Handle(ctx context.Context, rec slog.Record) error {
	r, _ := ctx.Value(reasonsKey{}).(*retryReasons)
	if r == nil || rec.Message != "eventstore: retrying" {
		return nil
	}
	reason := "unknown"
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			reason = a.Value.String()
			return false
		}
		return true
	})
	r.mu.Lock()
	r.counts[reason]++
	r.mu.Unlock()
	return nil
}

func (h retryHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h retryHandler) WithGroup(string) slog.Handler      { return h }
