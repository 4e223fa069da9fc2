package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/reactors"
)

// The pipeline scenarios measure what surrounds a dispatch in a worker:
// the outbox's job inserts inside the dispatch transaction (outbox), the
// way from a commit through River to an executed effect (effects), and a
// command sent from a Temporal workflow rather than dispatched in process
// (temporal). All run the default strategy, keys.

// Pseudo-strategies of the pipeline scenarios.
const (
	// strategyOutbox is keys with the outbox installed: every dispatch
	// also inserts a River reaction job in its transaction.
	strategyOutbox = "keys+outbox"
	// strategyTracing is keys+outbox with every dispatch traced and
	// sampled (ScenarioTracing).
	strategyTracing = "keys+outbox+tracing"
	// strategyDirect dispatches through the activities registry in the
	// client's goroutine: JSON payload, command id, the same handler.
	strategyDirect = "direct"
	// strategyTemporal runs a workflow per command whose activity
	// dispatches through the same registry; the client waits for the
	// workflow's result.
	strategyTemporal = "temporal"
	// strategyTemporalLocal is strategyTemporal with the command sent
	// through the local activity (CommandOptions.Local).
	strategyTemporalLocal = "temporal-local"
	// strategyTemporalEager is strategyTemporalLocal with the workflow
	// started eagerly: the server hands its first workflow task straight
	// back to the worker in this process (the client is the worker's), so
	// no task goes through a task queue.
	strategyTemporalEager = "temporal-local+eager"
)

// benchReactor is the reactor of the outbox and effects scenarios: one
// welcome effect per registered user.
const (
	benchReactor = "bench_welcome"
	benchEffect  = "bench.welcome"
)

// welcome is the effect's args. RecordedAt travels with it so the handler
// can tell how long after the event's insert it ran, whichever process
// runs it.
type welcome struct {
	UserID     string    `json:"user_id"`
	RecordedAt time.Time `json:"recorded_at"`
}

// welcomesSchema is the effect's table, keyed by effect key: a handler run
// twice for one key inserts once, and the scenario counts the duplicates.
const welcomesSchema = `CREATE TABLE IF NOT EXISTS bench_welcomes (
	effect_key text PRIMARY KEY,
	user_id    text NOT NULL
)`

// welcomeReactor plans the welcome effect of a UserRegistered record.
func welcomeReactor(rec eventstore.Record[tickets.Event]) ([]eventstore.Effect, error) {
	u, ok := rec.Event.(tickets.UserRegistered)
	if !ok {
		return nil, nil
	}
	return []eventstore.Effect{{Kind: benchEffect, Key: "welcome:" + rec.ID.String(), Args: welcome{UserID: u.UserID, RecordedAt: rec.RecordedAt}}}, nil
}

// outboxHook returns the outbox of a registry holding the welcome reactor.
func outboxHook(t *target) (eventstore.BatchHook, error) {
	reg := reactors.NewRegistry(nil)
	if err := addWelcomeReactor(reg, t.codec, welcomeReactor); err != nil {
		return nil, err
	}
	return reg.Outbox(nil)
}

func addWelcomeReactor(reg *reactors.Registry, codec eventstore.Codec[tickets.Event], react eventstore.Reactor[tickets.Event]) error {
	return reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{
		Name:      benchReactor,
		Codec:     codec,
		Subscribe: eventstore.NewQuery(eventstore.Types(tickets.TypeUserRegistered)),
		React:     react,
	})
}

// temporalWindow is the shortest measured window of the temporal path: a
// workflow takes tens of milliseconds or more, and a quick run's window
// would hold none.
const temporalWindow = 2 * time.Second

// commandPath is the workload of the temporal scenario on one target.
type commandPath struct {
	reg      *activities.Registry
	tc       client.Client
	queue    string
	workflow string
	eager    bool
	worker   worker.Worker
	warm     bool
}

// benchWorkflow is the workflow of the temporal pseudo-strategy: one
// command through the regular activity, with the library's default
// options.
func benchWorkflow(ctx workflow.Context, cmd tickets.RegisterUser) (*activities.Result, error) {
	return benchCommand(ctx, cmd, false)
}

// benchWorkflowLocal is that of temporal-local: the same command through
// the local activity, with the library's default local options.
func benchWorkflowLocal(ctx workflow.Context, cmd tickets.RegisterUser) (*activities.Result, error) {
	return benchCommand(ctx, cmd, true)
}

func benchCommand(ctx workflow.Context, cmd tickets.RegisterUser, local bool) (*activities.Result, error) {
	return activities.ExecuteCommand(ctx, tickets.CmdRegisterUser, cmd, &activities.CommandOptions{
		CommandID:    activities.CommandIDFor(ctx, "register"),
		Local:        local,
		DomainErrors: tickets.DomainErrors,
	})
}

// benchWorkflows are the workflows of the pseudo-strategies that send
// commands through Temporal, by pseudo-strategy, and whether they are
// started eagerly.
var benchWorkflows = map[string]struct {
	name  string
	fn    func(workflow.Context, tickets.RegisterUser) (*activities.Result, error)
	eager bool
}{
	strategyTemporal:      {"bench.RegisterUser", benchWorkflow, false},
	strategyTemporalLocal: {"bench.RegisterUserLocal", benchWorkflowLocal, false},
	strategyTemporalEager: {"bench.RegisterUserLocal", benchWorkflowLocal, true},
}

// newCommandPath registers the ticket commands on t's store and, for the
// pseudo-strategies through Temporal, starts a Temporal worker on a task
// queue of its own in this process.
func newCommandPath(t *target, tc client.Client) (*commandPath, error) {
	reg := activities.NewRegistry(t.store, &activities.Config{DomainErrors: tickets.DomainErrors})
	if err := tickets.RegisterCommands(reg, t.codec); err != nil {
		return nil, err
	}
	p := &commandPath{reg: reg, tc: tc}
	wf, ok := benchWorkflows[t.name]
	if !ok {
		return p, nil
	}
	p.queue = fmt.Sprintf("bench-%s-%d", t.name, time.Now().UnixNano())
	p.workflow, p.eager = wf.name, wf.eager
	p.worker = worker.New(tc, p.queue, worker.Options{})
	reg.Activities().Register(p.worker)
	p.worker.RegisterWorkflowWithOptions(wf.fn, workflow.RegisterOptions{Name: wf.name})
	if err := p.worker.Start(); err != nil {
		return nil, fmt.Errorf("error starting the Temporal worker: %w", err)
	}
	return p, nil
}

// prepare runs one workflow to completion before the first phase: a new
// worker's pollers take a moment to reach the server, which a short
// warm-up would otherwise measure.
func (p *commandPath) prepare(ctx context.Context, _ time.Duration) error {
	if p.worker == nil || p.warm {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := p.command(ctx, 0, 0, "warm"); err != nil {
		return fmt.Errorf("error running a first workflow: %w", err)
	}
	p.warm = true
	return nil
}

func (p *commandPath) close() {
	if p.worker != nil {
		p.worker.Stop()
	}
}

// command registers a fresh username, directly or through a workflow.
func (p *commandPath) command(ctx context.Context, clientNo, seq int, prefix string) (string, error) {
	id := name(prefix, clientNo, seq)
	cmd := tickets.RegisterUser{UserID: id, Username: id}
	if p.worker == nil {
		payload, err := json.Marshal(cmd)
		if err != nil {
			return "", err
		}
		_, err = p.reg.Dispatch(ctx, tickets.CmdRegisterUser, "register-"+id, payload, nil)
		return "", err
	}
	opts := client.StartWorkflowOptions{ID: "bench-" + p.queue + "-" + id, TaskQueue: p.queue, EnableEagerStart: p.eager}
	run, err := p.tc.ExecuteWorkflow(ctx, opts, p.workflow, cmd)
	if err != nil {
		return "", err
	}
	var res activities.Result
	return "", run.Get(ctx, &res)
}

// dialTemporal connects to the run's Temporal server, starting one first
// if the configuration says how. done closes the client and stops what
// was started.
func dialTemporal(ctx context.Context, cfg *Config) (tc client.Client, done func(), err error) {
	addr, stop := cfg.TemporalAddress, func() {}
	if addr == "" {
		if cfg.StartTemporal == nil {
			return nil, nil, errors.New("the temporal scenario needs Config.TemporalAddress or StartTemporal")
		}
		if addr, stop, err = cfg.StartTemporal(ctx); err != nil {
			return nil, nil, fmt.Errorf("error starting Temporal: %w", err)
		}
	}
	tc, err = client.Dial(client.Options{HostPort: addr, Namespace: cfg.TemporalNamespace,
		Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("error connecting to Temporal at %s: %w", addr, err)
	}
	return tc, func() { tc.Close(); stop() }, nil
}

// EffectRun is the effects scenario at one offered rate: commands
// dispatched at a fixed rate with the outbox installed, River running the
// reactions and the effects in this process, and how long after each
// event's insert its effect ran.
type EffectRun struct {
	// Variant names the River configuration; Workers are its reaction and
	// effect workers (each); FetchCooldownMs its fetch cooldown (0: River's
	// default, 100ms).
	Variant         string  `json:"variant"`
	Workers         int     `json:"workers"`
	FetchCooldownMs float64 `json:"fetch_cooldown_ms"`
	// Rate is the offered rate, commands per second.
	Rate int `json:"rate_per_s"`
	// PerSecond is the rate achieved: commands committed per second of the
	// window.
	PerSecond float64 `json:"commands_per_s"`
	Seconds   float64 `json:"seconds"`
	Commands  int64   `json:"commands"`
	// Effects is how many distinct effects ran; Duplicates how many
	// handler runs found their key already recorded; Missing how many
	// commands had no effect by the drain deadline. Exactly one effect per
	// command is the invariant.
	Effects    int64  `json:"effects"`
	Duplicates int64  `json:"duplicates"`
	Missing    int64  `json:"missing"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`

	// Dispatch is the dispatch's latency with the outbox.
	Dispatch Latency `json:"dispatch"`
	// ToReaction, ToEffect and ToDone are measured from the event's
	// recorded_at (its insert, just before commit) to the reactor's run,
	// to the effect handler's start and to the end of the handler's own
	// committed insert.
	ToReaction Latency `json:"to_reaction"`
	ToEffect   Latency `json:"to_effect"`
	ToDone     Latency `json:"to_done"`
}

// offered is what offer measured.
type offered struct {
	seconds float64
	// lat are the durations of the calls that succeeded.
	lat      []time.Duration
	errors   int64
	firstErr string
}

func (o offered) perSecond() float64 { return float64(len(o.lat)) / o.seconds }

// offer calls do rate times a second for d, each call on its own goroutine
// (so a slow one does not delay the next one's start), and waits for them
// all. At most 256 calls are in flight: past that the store is the
// bottleneck and the achieved rate says so.
func offer(ctx context.Context, rate int, d time.Duration, do func(ctx context.Context, i int) error) (offered, error) {
	var o offered
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errCount atomic.Int64
		firstErr atomic.Pointer[string]
	)
	sem := make(chan struct{}, 256)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return o, ctx.Err()
			case <-time.After(d):
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			if err := do(ctx, i); err != nil {
				errCount.Add(1)
				s := err.Error()
				firstErr.CompareAndSwap(nil, &s)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			o.lat = append(o.lat, d)
			mu.Unlock()
		})
	}
	wg.Wait()
	o.seconds = time.Since(start).Seconds()
	o.errors = errCount.Load()
	if s := firstErr.Load(); s != nil {
		o.firstErr = *s
	}
	return o, nil
}

// effectTimes collects the effects scenario's observations.
type effectTimes struct {
	mu                 sync.Mutex
	reaction           map[string]time.Duration // by user id, first run only
	effect, done       []time.Duration
	effects, duplicate atomic.Int64
}

func (e *effectTimes) reset() {
	e.mu.Lock()
	e.reaction = map[string]time.Duration{}
	e.effect, e.done = nil, nil
	e.mu.Unlock()
	e.effects.Store(0)
	e.duplicate.Store(0)
}

// riverVariant is a River configuration the effects scenario runs with.
type riverVariant struct {
	name          string
	workers       int
	fetchCooldown time.Duration // 0: River's default (100ms)
}

// riverVariants are compared side by side: River's own fetch default and
// the worker's (RIVER_FETCH_COOLDOWN), both with the worker's default 10
// reaction and 10 effect workers.
var riverVariants = []riverVariant{
	{name: "River default (fetch cooldown 100ms)", workers: 10},
	{name: "worker default (fetch cooldown 10ms)", workers: 10, fetchCooldown: 10 * time.Millisecond},
}

// effects runs the effects scenario: per River variant, one database with
// keys and the outbox, a River client in this process running reactions
// and effects, each rate for Duration.
func (r *runner) effects(ctx context.Context, res *Results) error {
	for _, v := range riverVariants {
		if err := r.effectsVariant(ctx, res, v); err != nil {
			return fmt.Errorf("effects (%s): %w", v.name, err)
		}
	}
	return nil
}

func (r *runner) effectsVariant(ctx context.Context, res *Results, v riverVariant) (err error) {
	t, err := r.keysTarget(ctx, 64)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	if _, err := t.pool.Exec(ctx, welcomesSchema); err != nil {
		return err
	}

	times := &effectTimes{}
	times.reset()
	reg := reactors.NewRegistry(nil)
	// The reactor is pure but for one thing: it notes when it ran, which
	// is what this scenario measures. A retried reaction keeps the first.
	react := func(rec eventstore.Record[tickets.Event]) ([]eventstore.Effect, error) {
		if u, ok := rec.Event.(tickets.UserRegistered); ok {
			lag := time.Since(rec.RecordedAt)
			times.mu.Lock()
			if _, seen := times.reaction[u.UserID]; !seen {
				times.reaction[u.UserID] = lag
			}
			times.mu.Unlock()
		}
		return welcomeReactor(rec)
	}
	if err := addWelcomeReactor(reg, t.codec, react); err != nil {
		return err
	}
	err = reactors.AddEffect(reg, reactors.EffectHandler[welcome]{
		Kind: benchEffect,
		Handle: func(ctx context.Context, e reactors.Effect[welcome]) error {
			start := time.Since(e.Args.RecordedAt)
			tag, err := t.pool.Exec(ctx, `INSERT INTO bench_welcomes (effect_key, user_id) VALUES ($1, $2) ON CONFLICT (effect_key) DO NOTHING`, e.Key, e.Args.UserID)
			if err != nil {
				return err
			}
			done := time.Since(e.Args.RecordedAt)
			if tag.RowsAffected() == 0 {
				times.duplicate.Add(1)
				return nil
			}
			times.mu.Lock()
			times.effect = append(times.effect, start)
			times.done = append(times.done, done)
			times.mu.Unlock()
			times.effects.Add(1)
			return nil
		},
	})
	if err != nil {
		return err
	}
	workers := river.NewWorkers()
	rc, err := river.NewClient(riverpgxv5.New(t.pool), &river.Config{
		Queues:        reg.Queues(v.workers, v.workers),
		Workers:       workers,
		FetchCooldown: v.fetchCooldown,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	ob, err := reg.Outbox(nil)
	if err != nil {
		return err
	}
	store, err := eventstore.New(t.pool, &eventstore.Config{BatchHooks: []eventstore.BatchHook{ob}, MaxAttempts: r.cfg.MaxAttempts})
	if err != nil {
		return err
	}
	if err := reg.AddWorkers(workers, store); err != nil {
		return err
	}
	// River's own context: not the run's, whose cancellation would stop
	// it before Stop could let running jobs finish.
	riverCtx, cancelRiver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRiver()
	if err := rc.Start(riverCtx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, rc.Stop(stopCtx))
	}()

	h := tickets.RegisterUserHandler(t.codec)
	for i, rate := range r.cfg.EffectRates {
		times.reset()
		run, err := r.effectRate(ctx, store, h, times, fmt.Sprintf("e%d", i), rate)
		if err != nil {
			return fmt.Errorf("effects at %d/s: %w", rate, err)
		}
		run.Variant, run.Workers, run.FetchCooldownMs = v.name, v.workers, float64(v.fetchCooldown)/float64(time.Millisecond)
		res.Effects = append(res.Effects, run)
		fmt.Fprintf(r.cfg.Log, "effects %-38s rate=%-5d %7.0f cmd/s  effects %d dup %d missing %d  dispatch p50 %.2fms p99 %.2fms  to effect p50 %.1fms p99 %.1fms  to done p50 %.1fms p99 %.1fms\n",
			v.name, rate, run.PerSecond, run.Effects, run.Duplicates, run.Missing, run.Dispatch.P50, run.Dispatch.P99, run.ToEffect.P50, run.ToEffect.P99, run.ToDone.P50, run.ToDone.P99)
	}
	return nil
}

// effectRate offers rate commands a second for Duration, then waits up to
// a minute for every effect.
func (r *runner) effectRate(ctx context.Context, store *eventstore.Store, h eventstore.Handler[tickets.RegisterUser, tickets.Event, bool], times *effectTimes, prefix string, rate int) (EffectRun, error) {
	run := EffectRun{Rate: rate}
	o, err := offer(ctx, rate, r.cfg.Duration, func(ctx context.Context, i int) error {
		id := fmt.Sprintf("%s-%d", prefix, i)
		_, err := eventstore.Dispatch(ctx, store, h, tickets.RegisterUser{UserID: id, Username: id}, nil)
		return err
	})
	if err != nil {
		return run, err
	}
	run.Seconds, run.Commands, run.PerSecond = o.seconds, int64(len(o.lat)), o.perSecond()
	run.Errors, run.FirstError = o.errors, o.firstErr
	run.Dispatch = latencyOf(o.lat)

	deadline := time.Now().Add(time.Minute)
	for times.effects.Load() < run.Commands && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	run.Effects = times.effects.Load()
	run.Duplicates = times.duplicate.Load()
	run.Missing = max(0, run.Commands-run.Effects)
	times.mu.Lock()
	defer times.mu.Unlock()
	reaction := make([]time.Duration, 0, len(times.reaction))
	for _, d := range times.reaction {
		reaction = append(reaction, d)
	}
	run.ToReaction = latencyOf(reaction)
	run.ToEffect = latencyOf(times.effect)
	run.ToDone = latencyOf(times.done)
	return run, nil
}
