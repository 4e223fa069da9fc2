package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/outbox"
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
func welcomeReactor(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
	u, ok := rec.Event.(tickets.UserRegistered)
	if !ok {
		return nil, nil
	}
	return []eventstore.PlannedEffect{{Kind: benchEffect, Key: "welcome:" + rec.ID.String(), Args: welcome{UserID: u.UserID, RecordedAt: rec.RecordedAt}}}, nil
}

// outboxHook returns the outbox of a registry holding the welcome reactor.
func outboxHook(t *target) (eventstore.BatchHook, error) {
	reg := reactors.NewRegistry(nil)
	if err := addWelcomeReactor(reg, t.codec, welcomeReactor); err != nil {
		return nil, err
	}
	return reg.Outbox(nil)
}

func addWelcomeReactor(reg *reactors.Registry, codec eventstore.Codec[tickets.Event], react eventstore.ReactFunc[tickets.Event]) error {
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
	// Rate is the offered rate, commands per second; Fraction is Rate as a
	// fraction of Results.EffectBase (0: a fixed rate).
	Rate     int     `json:"rate_per_s"`
	Fraction float64 `json:"fraction,omitempty"`
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
	// EffectsPerSecond is the rate the effects ran at: effects ended per
	// second between the ends of the tenth and the ninetieth percentile
	// effect, in order of their ends. It is the offered rate when the
	// pipeline keeps up and its throughput when it falls behind, whatever
	// its latency, and a few stragglers do not move it.
	EffectsPerSecond float64 `json:"effects_per_s"`

	// OrderingKeys is how many ordering keys the run's effects were
	// spread over (Config.EffectOrderingKeys); 0: unordered, today's
	// effects.
	OrderingKeys int `json:"ordering_keys,omitempty"`
	// OrderChecks counts, in an ordered run, the effects that ran after
	// an earlier one of their key, each compared with it; OrderViolations
	// those that ran after an effect of a higher position of their key,
	// or started while another effect of their key was running. Only the
	// first run of each effect key counts. No violation is the invariant.
	OrderChecks     int64 `json:"order_checks,omitempty"`
	OrderViolations int64 `json:"order_violations"`

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
	// seconds is the span over which the calls were issued: from the
	// first call's start to one interval after the last call's start. At
	// a rate the store keeps up with it is the offered window; when the
	// cap on calls in flight holds calls back it grows, and the achieved
	// rate falls below the offered one. The calls' own latency is not in
	// it: it is what lat reports.
	seconds float64
	// lat are the durations of the calls that succeeded.
	lat      []time.Duration
	errors   int64
	firstErr string
}

func (o offered) perSecond() float64 { return float64(len(o.lat)) / o.seconds }

// offer calls do rate times a second for d, and at least minCalls times,
// each call on its own goroutine (so a slow one does not delay the next
// one's start), and waits for them all. At most 256 calls are in flight:
// past that the store is the bottleneck and the achieved rate says so.
func offer(ctx context.Context, rate int, d time.Duration, minCalls int, do func(ctx context.Context, i int) error) (offered, error) {
	var o offered
	interval := time.Second / time.Duration(rate)
	n := max(int(d/interval), minCalls, 1)
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
	o.seconds = (time.Since(start) + interval).Seconds()
	wg.Wait()
	o.errors = errCount.Load()
	if s := firstErr.Load(); s != nil {
		o.firstErr = *s
	}
	return o, nil
}

// effectTimes collects the effects scenario's observations.
type effectTimes struct {
	mu           sync.Mutex
	reaction     map[string]time.Duration // by user id, first run only
	effect, done []time.Duration
	// ends are when the effects ended.
	ends []time.Time
	// last is the position of the last effect of each ordering key that
	// ran (first runs only); running counts the handlers of each key
	// running now.
	last    map[string]eventstore.Position
	running map[string]int

	effects, duplicate, orderChecks, violations atomic.Int64
}

func (e *effectTimes) reset() {
	e.mu.Lock()
	e.reaction = map[string]time.Duration{}
	e.effect, e.done = nil, nil
	e.ends = nil
	e.last = map[string]eventstore.Position{}
	e.running = map[string]int{}
	e.mu.Unlock()
	e.effects.Store(0)
	e.duplicate.Store(0)
	e.orderChecks.Store(0)
	e.violations.Store(0)
}

// enter notes that a handler of an ordering key started, and counts a
// violation when another one of the key is running; leave that it ended.
func (e *effectTimes) enter(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[key] > 0 {
		e.violations.Add(1)
	}
	e.running[key]++
}

func (e *effectTimes) leave(key string) {
	e.mu.Lock()
	e.running[key]--
	e.mu.Unlock()
}

// orderedPrefix starts the command ids of the ordered runs: the reactor
// gives their effects an ordering key, and no other.
const orderedPrefix = "o"

// orderingKey is the ordering key of the effect for a user id of an
// ordered run ("o<step>-<n>"): "user-group:o<step>:<n mod keys>", a key
// per group of users, each run's keys its own so that a run's sequences
// do not wait on another's. Unordered runs' ids get "".
func orderingKey(userID string, keys int) string {
	prefix, num, ok := strings.Cut(userID, "-")
	if !ok || !strings.HasPrefix(prefix, orderedPrefix) || keys <= 0 {
		return ""
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("user-group:%s:%d", prefix, n%keys)
}

// riverVariant is a River configuration the effects scenario runs with.
type riverVariant struct {
	name          string
	workers       int
	fetchCooldown time.Duration // 0: River's default (100ms)
	// ordered runs every rate twice, back to back on the same River
	// client: unordered effects, then ordered ones.
	ordered bool
	// reactionBatch is the registry's ReactionBatchSize (0: its default).
	reactionBatch int
}

// riverVariants are compared side by side, the worker's defaults first
// (50 reaction and 50 effect workers, RIVER_FETCH_COOLDOWN 10ms, the
// outbox notifying once per cooldown, reactions claiming up to
// reactors.DefaultReactionBatchSize jobs): the targets judge that one.
// The others each change one setting: every reaction job alone (no
// claims), River's own fetch cooldown, the former default of 10 workers, a
// shorter cooldown. The worker's defaults also run every rate with ordered
// effects, right after the unordered run of the rate.
var riverVariants = []riverVariant{
	{name: fmt.Sprintf("worker default (%d workers, fetch cooldown 10ms)", factos.DefaultEffectWorkers), workers: factos.DefaultEffectWorkers, fetchCooldown: 10 * time.Millisecond, ordered: true},
	{name: "one reaction job per reaction (ReactionBatchSize 1)", workers: factos.DefaultEffectWorkers, fetchCooldown: 10 * time.Millisecond, reactionBatch: 1},
	{name: "River default fetch cooldown (100ms)", workers: factos.DefaultEffectWorkers},
	{name: "10 workers (fetch cooldown 10ms)", workers: 10, fetchCooldown: 10 * time.Millisecond},
	{name: fmt.Sprintf("fetch cooldown 2ms (%d workers)", factos.DefaultEffectWorkers), workers: factos.DefaultEffectWorkers, fetchCooldown: 2 * time.Millisecond},
}

// effectJudged is the offered rate the targets judge commit to effect at,
// as a fraction of keys+outbox's throughput at 16 clients in the same run.
const effectJudged = 0.5

// DefaultEffectSteps are the offered rates of the effects scenario, as
// fractions of keys+outbox's throughput at 16 clients in the same run
// (Config.EffectSteps): from the judged rate up, until one is not
// sustained.
var DefaultEffectSteps = []float64{effectJudged, 0.6, 0.7, 0.8, 0.9, 1.0}

// effectStepsDown are the fractions the worker's default configuration
// steps down through when the first stepped rate is not sustained, until
// one is: the run then states the highest sustained rate it measured
// rather than only that it is below the judged one.
var effectStepsDown = []float64{0.4, 0.3, 0.2, 0.1}

// Sustained says whether the pipeline kept up with the offered rate: it
// achieved at least 0.98 of it, every command's effect ran exactly once,
// and p99 from commit to the effect's end stayed within a second.
func (e EffectRun) Sustained() bool {
	return e.PerSecond >= 0.98*float64(e.Rate) && e.ToDone.P99 <= 1000 && e.Missing == 0 && e.Duplicates == 0 && e.Errors == 0 && e.OrderViolations == 0 && e.Commands > 0
}

// EffectBase is the throughput the effects scenario's offered rates are
// fractions of.
type EffectBase struct {
	// Cell names it, e.g. "keys+outbox, 16 clients".
	Cell      string  `json:"cell"`
	PerSecond float64 `json:"commands_per_s"`
}

// effectBase finds keys+outbox's throughput at 16 clients, or at the most
// clients below 16 the run measured.
func (res *Results) effectBase() *EffectBase {
	var best *Cell
	for _, n := range res.clientCounts(ScenarioOutbox) {
		if c := res.find(ScenarioOutbox, strategyOutbox, n, 0); c != nil && n <= 16 && c.PerSecond > 0 {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	return &EffectBase{Cell: fmt.Sprintf("%s, %d clients", strategyOutbox, best.Clients), PerSecond: best.PerSecond}
}

// effects runs the effects scenario: per River variant, one database with
// keys and the outbox, a River client in this process running reactions
// and effects. The offered rates are Config.EffectRates if set, each for
// Duration; otherwise fractions (Config.EffectSteps) of keys+outbox's
// throughput in this run, stepped up until one is not sustained.
func (r *runner) effects(ctx context.Context, res *Results) error {
	type step struct {
		rate     int
		fraction float64
	}
	var steps []step
	if len(r.cfg.EffectRates) > 0 {
		for _, rate := range r.cfg.EffectRates {
			steps = append(steps, step{rate: rate})
		}
	} else if res.EffectBase = res.effectBase(); res.EffectBase != nil {
		for _, f := range r.cfg.EffectSteps {
			steps = append(steps, step{rate: max(1, int(f*res.EffectBase.PerSecond)), fraction: f})
		}
	} else {
		for _, rate := range DefaultEffectRates {
			steps = append(steps, step{rate: rate})
		}
	}
	for _, v := range riverVariants {
		err := r.effectsVariant(ctx, v, func(run func(prefix string, rate, keys int) (EffectRun, error)) error {
			ordered := v.ordered
			for i, s := range steps {
				er, err := run(fmt.Sprintf("e%d", i), s.rate, 0)
				if err != nil {
					return fmt.Errorf("effects at %d/s: %w", s.rate, err)
				}
				er.Fraction = s.fraction
				res.Effects = append(res.Effects, er)
				if ordered {
					or, err := run(fmt.Sprintf("%s%d", orderedPrefix, i), s.rate, r.cfg.EffectOrderingKeys)
					if err != nil {
						return fmt.Errorf("ordered effects at %d/s: %w", s.rate, err)
					}
					or.Fraction = s.fraction
					res.Effects = append(res.Effects, or)
					// Ordered runs stop at their first stepped rate
					// not sustained; the unordered ones go on.
					ordered = s.fraction == 0 || or.Sustained()
				}
				// Stepped rates stop at the first one not sustained.
				if s.fraction > 0 && !er.Sustained() {
					if i == 0 && v.name == riverVariants[0].name {
						return stepDown(run, res)
					}
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("effects (%s): %w", v.name, err)
		}
	}
	res.EffectOrdering = res.effectOrdering()
	return nil
}

// stepDown runs the worker's default configuration at effectStepsDown of
// the effects base, unordered, until one rate is sustained.
func stepDown(run func(prefix string, rate, keys int) (EffectRun, error), res *Results) error {
	for i, f := range effectStepsDown {
		rate := max(1, int(f*res.EffectBase.PerSecond))
		er, err := run(fmt.Sprintf("d%d", i), rate, 0)
		if err != nil {
			return fmt.Errorf("effects at %d/s: %w", rate, err)
		}
		er.Fraction = f
		res.Effects = append(res.Effects, er)
		if er.Sustained() {
			return nil
		}
	}
	return nil
}

// effectsVariant readies one variant's database, River client and store,
// and lets each run rates on them.
//
// The registry's sequencer runs beside the River client, as in `worker
// run`: without it ordered effects would wait forever, and unordered runs
// pay its idle polling as the worker does.
func (r *runner) effectsVariant(ctx context.Context, v riverVariant, each func(run func(prefix string, rate, keys int) (EffectRun, error)) error) (err error) {
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
	reg := reactors.NewRegistry(&reactors.Config{NotifyInterval: v.fetchCooldown, ReactionBatchSize: v.reactionBatch})
	// The reactor is pure but for one thing: it notes when it ran, which
	// is what this scenario measures. A retried reaction keeps the first.
	// The effects of an ordered run's commands get their ordering key.
	react := func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		u, ok := rec.Event.(tickets.UserRegistered)
		if ok {
			lag := time.Since(rec.RecordedAt)
			times.mu.Lock()
			if _, seen := times.reaction[u.UserID]; !seen {
				times.reaction[u.UserID] = lag
			}
			times.mu.Unlock()
		}
		effects, err := welcomeReactor(rec)
		if ok {
			for i := range effects {
				effects[i].OrderingKey = orderingKey(u.UserID, r.cfg.EffectOrderingKeys)
			}
		}
		return effects, err
	}
	if err := addWelcomeReactor(reg, t.codec, react); err != nil {
		return err
	}
	err = reactors.AddEffect(reg, reactors.EffectHandler[welcome]{
		Kind: benchEffect,
		Handle: func(ctx context.Context, e reactors.Effect[welcome]) error {
			start := time.Since(e.Args.RecordedAt)
			if e.OrderingKey != "" {
				times.enter(e.OrderingKey)
				defer times.leave(e.OrderingKey)
			}
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
			times.ends = append(times.ends, time.Now())
			// The key's previous effect finished before this one was
			// released, so the handlers of one key record their
			// positions in the order they ran.
			if k := e.OrderingKey; k != "" {
				if last, ok := times.last[k]; ok {
					times.orderChecks.Add(1)
					if e.Position < last {
						times.violations.Add(1)
					}
				}
				times.last[k] = e.Position
			}
			times.mu.Unlock()
			times.effects.Add(1)
			return nil
		},
	})
	if err != nil {
		return err
	}
	fc, err := factos.NewClient(t.pool, reg, &factos.Config{
		Store:           &eventstore.Config{MaxAttempts: r.cfg.MaxAttempts},
		Outbox:          &outbox.Config{NotifyInterval: v.fetchCooldown},
		River:           &river.Config{FetchCooldown: v.fetchCooldown},
		ReactionWorkers: v.workers,
		EffectWorkers:   v.workers,
	})
	if err != nil {
		return err
	}
	store := fc.Store()
	// River's own context: not the run's, whose cancellation would stop
	// it before Stop could let running jobs finish.
	riverCtx, cancelRiver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRiver()
	if err := fc.Start(riverCtx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, fc.Stop(stopCtx))
	}()

	h := tickets.RegisterUserHandler(t.codec)
	// A warm-up, unmeasured, for each kind of run the variant measures:
	// otherwise the first rate would also measure cold connections,
	// caches and plans, and the unordered run, first, would pay for both.
	warmups := []string{"w"}
	if v.ordered {
		warmups = append(warmups, orderedPrefix+"w")
	}
	for _, prefix := range warmups {
		times.reset()
		if _, err := r.effectRate(ctx, store, h, times, prefix, 100, r.cfg.Warmup); err != nil {
			return fmt.Errorf("warming up: %w", err)
		}
	}
	return each(func(prefix string, rate, keys int) (EffectRun, error) {
		times.reset()
		run, err := r.effectRate(ctx, store, h, times, prefix, rate, r.cfg.Duration)
		if err != nil {
			return run, err
		}
		run.Variant, run.Workers, run.FetchCooldownMs = v.name, v.workers, float64(v.fetchCooldown)/float64(time.Millisecond)
		run.OrderingKeys = keys
		mode := "unordered"
		if keys > 0 {
			mode = fmt.Sprintf("ordered (%d keys)", keys)
		}
		fmt.Fprintf(r.cfg.Log, "effects %-48s %-18s rate=%-5d %7.0f cmd/s %7.0f effects/s  effects %d dup %d missing %d order violations %d/%d  dispatch p50 %.2fms p99 %.2fms  to effect p50 %.1fms p99 %.1fms  to done p50 %.1fms p99 %.1fms  sustained %v\n",
			v.name, mode, rate, run.PerSecond, run.EffectsPerSecond, run.Effects, run.Duplicates, run.Missing, run.OrderViolations, run.OrderChecks, run.Dispatch.P50, run.Dispatch.P99, run.ToEffect.P50, run.ToEffect.P99, run.ToDone.P50, run.ToDone.P99, run.Sustained())
		return run, nil
	})
}

// effectRate offers rate commands a second for d, then waits up to a
// minute for every effect.
func (r *runner) effectRate(ctx context.Context, store *eventstore.Store, h eventstore.Handler[tickets.RegisterUser, tickets.Event, bool], times *effectTimes, prefix string, rate int, d time.Duration) (EffectRun, error) {
	run := EffectRun{Rate: rate}
	o, err := offer(ctx, rate, d, r.cfg.MinCommands, func(ctx context.Context, i int) error {
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
	run.OrderChecks, run.OrderViolations = times.orderChecks.Load(), times.violations.Load()
	times.mu.Lock()
	defer times.mu.Unlock()
	run.EffectsPerSecond = endRate(times.ends)
	reaction := make([]time.Duration, 0, len(times.reaction))
	for _, d := range times.reaction {
		reaction = append(reaction, d)
	}
	run.ToReaction = latencyOf(reaction)
	run.ToEffect = latencyOf(times.effect)
	run.ToDone = latencyOf(times.done)
	return run, nil
}

// endRate is the rate of the ends between the tenth and the ninetieth
// percentile (which it sorts); 0 with too few to tell.
func endRate(ends []time.Time) float64 {
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(ends)/10, len(ends)-1-len(ends)/10
	if hi <= lo {
		return 0
	}
	span := ends[hi].Sub(ends[lo]).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(hi-lo) / span
}
