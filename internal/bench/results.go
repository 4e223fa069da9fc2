package bench

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/factos-go/factos"
)

// Results are everything one run measured. WriteJSON stores them as they
// are; WriteMarkdown and WriteSVG render them.
type Results struct {
	Run     RunInfo     `json:"run"`
	Machine Machine     `json:"machine"`
	Cells   []Cell      `json:"cells"`
	CatchUp []CatchUp   `json:"catchup,omitempty"`
	Tail    []Tail      `json:"tail,omitempty"`
	Effects []EffectRun `json:"effects,omitempty"`
	// EffectBase is what the effects scenario's stepped rates are
	// fractions of, when they are.
	EffectBase *EffectBase `json:"effect_base,omitempty"`
	// EffectOrdering sets each ordered effect run beside the unordered
	// run of the same rate and River configuration.
	EffectOrdering []EffectOrdering `json:"effect_ordering,omitempty"`
	Plans          []Plan           `json:"plans,omitempty"`
	Targets        []Target         `json:"targets,omitempty"`

	// ProjectionCatchUp and ProjectionLag are the projection scenarios'.
	ProjectionCatchUp []ProjectionCatchUp `json:"projection_catchup,omitempty"`
	ProjectionLag     []ProjectionLag     `json:"projection_lag,omitempty"`
}

// RunInfo is how the run was made.
type RunInfo struct {
	// ID names the run; the report's hand-written analysis records the ID
	// it was written for.
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Command  string    `json:"command,omitempty"`

	Scenarios    []string  `json:"scenarios"`
	Strategies   []string  `json:"strategies"`
	Clients      []int     `json:"clients"`
	DurationSec  float64   `json:"duration_s"`
	WarmupSec    float64   `json:"warmup_s"`
	Repeats      int       `json:"repeats"`
	HighClients  int       `json:"high_clients"`
	HighRepeats  int       `json:"high_repeats"`
	HistorySizes []int     `json:"history_sizes,omitempty"`
	EffectRates  []int     `json:"effect_rates,omitempty"`
	EffectSteps  []float64 `json:"effect_steps,omitempty"`
	// EffectOrderingKeys is how many ordering keys the ordered effect
	// runs spread their effects over.
	EffectOrderingKeys int     `json:"effect_ordering_keys,omitempty"`
	HotEpoch           int     `json:"hot_epoch"`
	MixHotPercent      int     `json:"mix_hot_percent"`
	CatchUpEvents      int     `json:"catchup_events,omitempty"`
	CatchUpWriters     int     `json:"catchup_writers,omitempty"`
	TailRates          []int   `json:"tail_rates,omitempty"`
	MinCommands        int     `json:"min_commands"`
	MaxAttempts        int     `json:"max_attempts"`
	MaxOther           float64 `json:"max_other_cores"`
	Remeasure          int     `json:"remeasure"`

	ProjectionBatchSizes []int `json:"projection_batch_sizes,omitempty"`
	ProjectionRates      []int `json:"projection_rates,omitempty"`

	// Definitions says how the figures are counted.
	Definitions map[string]string `json:"definitions"`
}

// definitions are written into every result file, so the numbers carry
// their meaning with them.
var definitions = map[string]string{
	"commands_per_s": "commands decided (committed, or rejected by the decider) per second of the measured window; conflicts and errors are not counted",
	"latency":        "wall time of one eventstore.Dispatch call (or one ceiling INSERT) as the client sees it, retries and backoff included, over the commands counted",
	"conflicts":      "dispatches that returned ErrConflict (retries exhausted)",
	"retries":        "sum of DispatchInfo.Attempts-1 over the window's dispatches, from Config.Observer",
	"round_trips":    "per dispatch, counted by a pgx tracer: each Exec/Query/QueryRow (BEGIN, COMMIT and ROLLBACK included), each batch as one, and each statement preparation (a Prepare, or a batch that prepares statements new to the connection); pool pings and connection setup are not counted",
	"statements":     "per dispatch: each query, and each statement inside a batch",
	"cpu":            "cores kept busy on average during the window, from /proc: this process (client), the PostgreSQL server's processes (server), everything else (other)",
	"waits":          "pg_stat_activity sampled during the window: average number of the database's client backends per state and wait event; CPU means active and not waiting",
	"ceiling":        "the disjoint scenario's event and tag rows inserted with the store's own INSERT statement, autocommit, one round trip: no lock, no read, no check",
	"ceiling+tx":     "the ceiling's INSERT inside BEGIN/COMMIT at READ COMMITTED, as a dispatch runs it: three round trips",
	"keys+outbox":    "keys with the outbox installed: every dispatch also inserts one River reaction job row (internal/riversql) in the batch that inserts its events",
	"direct":         "the temporal scenario's command dispatched in the client's goroutine through activities.Registry.Dispatch (JSON payload, command id), without Temporal",
	"temporal":       "the same command sent as a workflow (one ExecuteCommand activity, default activity options) to a Temporal worker in the benchmark process; the client starts it and waits for its result; round trips are not counted on this path",
	"effects":        fmt.Sprintf("commands offered at fixed rates (fractions of keys+outbox's 16-client throughput in the run, stepped up until not sustained) with River running reactions and effects in the benchmark process, under the worker's defaults (%d workers each, fetch cooldown 10ms) and variants changing one setting; latencies from the event's recorded_at to the reactor's run, the effect handler's start and the end of its own committed insert", factos.DefaultEffectWorkers),
	"ordered":        "the effects scenario's worker-default configuration runs every offered rate twice, back to back on the same River client and database: unordered effects, then effects whose ordering key groups the commands (user-group:<n>, n the command's number modulo the run's key count), which run one at a time per key in position order, released by the registry's sequencer (default configuration, running beside the client in every configuration, as in worker run); effects/s is effects ended per second between the ends of the 10th and the 90th percentile effect (the offered rate when the pipeline keeps up, its throughput when it falls behind); an order violation is an effect whose handler ran (first run of its effect key) after one of a higher position of its key, or while another of its key ran",
	"tail":           "commands offered at a fixed rate under keys while a caught-up reader polls Store.ReadAfter (again at once after records, after 10ms when idle); from each record's recorded_at to the return of the read that returned it",
	"hot":            "BuyTicket for the current concert; every buyer races for it, and after hot_epoch sales all move on to the next concert (capacity 1e9, so it never sells out) to keep the context the decider reads the same size",
	// The temporal scenario's paths through the local activity.
	"temporal-local":       "the same workflow with the command sent through the local activity (ExecuteCommand with CommandOptions.Local, default local activity options), which runs in the workflow's worker inside its workflow task; round trips are not counted on this path",
	"temporal-local+eager": "temporal-local with the workflow started eagerly (StartWorkflowOptions.EnableEagerStart): the client is the worker's, so the server hands the first workflow task back in the start's response; no task of the workflow goes through a task queue",

	"keys+3 projections": "keys with three projections running in the benchmark process on the same database (users: every UserRegistered into a table; type_counts: every event, counted by type; concert_sales: schedules and sales, which the workload does not write), each with the default batch size and poll interval",
	"projection_lag":     "commands offered at a fixed rate, each on its own goroutine, with the users projection running in the benchmark process; from the dispatch's return (its commit) to WaitFor's return for its position",
}

// Cell is one scenario at one client count under one strategy: its
// repetitions and their summary. Summary figures are medians over the runs.
type Cell struct {
	Scenario string `json:"scenario"`
	// Strategy is a lock strategy, or "ceiling" / "ceiling+tx".
	Strategy string `json:"strategy"`
	Clients  int    `json:"clients"`
	// History is the number of events stored before the cell (history
	// scenario only).
	History int `json:"history,omitempty"`

	PerSecond    float64 `json:"commands_per_s"`
	PerSecondMin float64 `json:"commands_per_s_min"`
	PerSecondMax float64 `json:"commands_per_s_max"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// RetriesPerCommand and RoundTrips are per dispatch.
	RetriesPerCommand float64 `json:"retries_per_command"`
	RoundTrips        float64 `json:"round_trips_per_dispatch"`
	Statements        float64 `json:"statements_per_dispatch"`
	// Conflicts, Rejected and Errors are summed over the runs.
	Conflicts int64 `json:"conflicts"`
	Rejected  int64 `json:"rejected"`
	Errors    int64 `json:"errors"`

	Runs []Measurement `json:"runs"`
}

// Measurement is one measured window of a cell.
type Measurement struct {
	Seconds    float64 `json:"seconds"`
	Dispatches int64   `json:"dispatches"` // every outcome
	Commands   int64   `json:"commands"`   // committed + rejected
	Committed  int64   `json:"committed"`
	Rejected   int64   `json:"rejected"`
	// Rejections counts the decider's errors by message (e.g. "sold out").
	Rejections map[string]int64 `json:"rejections,omitempty"`
	Conflicts  int64            `json:"conflicts"`
	Errors     int64            `json:"errors"`
	FirstError string           `json:"first_error,omitempty"`

	Retries int64 `json:"retries"`
	// RetryReasons count the store's "retrying" log lines by reason.
	RetryReasons map[string]int64 `json:"retry_reasons,omitempty"`

	RoundTrips int64 `json:"round_trips"`
	Statements int64 `json:"statements"`
	Prepares   int64 `json:"prepares"`

	PerSecond         float64 `json:"commands_per_s"`
	RetriesPerCommand float64 `json:"retries_per_command"`
	RoundTripsPer     float64 `json:"round_trips_per_dispatch"`
	StatementsPer     float64 `json:"statements_per_dispatch"`
	Latency           Latency `json:"latency"`

	// Kinds split the mix scenario's figures by command kind.
	Kinds map[string]KindStats `json:"kinds,omitempty"`

	CPU   CPU    `json:"cpu"`
	Waits []Wait `json:"waits,omitempty"`
	// Disturbed is set when other processes kept more than
	// Config.MaxOther cores busy during the window. A cell's summary
	// leaves disturbed windows out when it has others.
	Disturbed bool `json:"disturbed,omitempty"`

	// TopStatements are the statements that took the most server time,
	// when pg_stat_statements is available.
	TopStatements []Statement `json:"top_statements,omitempty"`
}

// Latency summarizes the latencies of the counted commands, in ms.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// KindStats are one command kind's share of a measurement.
type KindStats struct {
	Commands  int64   `json:"commands"`
	PerSecond float64 `json:"commands_per_s"`
	Latency   Latency `json:"latency"`
}

// CatchUp is one catch-up read: Store.ReadAfter from position 0 until the
// reader reached the log's head as of its start; with writers, pass after
// pass for the writers' window.
type CatchUp struct {
	Strategy string `json:"strategy"`
	// Filter is "none" (every event) or the query read.
	Filter  string `json:"filter"`
	Writers int    `json:"writers"`
	// Stored is how many events were in the log when the read began.
	Stored int64 `json:"stored"`
	// Records returned and log positions covered per second.
	Records      int64   `json:"records"`
	Pages        int64   `json:"pages"`
	Seconds      float64 `json:"seconds"`
	RecordsPerS  float64 `json:"records_per_s"`
	PositionsPer float64 `json:"positions_per_s"`
	PageLatency  Latency `json:"page_latency"`
	// Passes is how many reads from position 0 the reader began: one
	// alone; with writers, as many as fit in the window.
	Passes int `json:"passes"`
	// Writer figures, when writers ran during the read.
	WriterPerS    float64 `json:"writer_commands_per_s,omitempty"`
	WriterLatency Latency `json:"writer_latency"`
	// WriterAlonePerS and WriterAloneLatency are the same writers' in a
	// window of the same length with no reader, measured just before.
	WriterAlonePerS    float64 `json:"writer_alone_commands_per_s,omitempty"`
	WriterAloneLatency Latency `json:"writer_alone_latency"`
	Errors             int64   `json:"errors"`
	FirstError         string  `json:"first_error,omitempty"`
}

// kept are the runs a cell's summary is made of: the undisturbed ones, or
// every run when all were disturbed.
func (c *Cell) kept() []Measurement {
	var out []Measurement
	for _, r := range c.Runs {
		if !r.Disturbed {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return c.Runs
	}
	return out
}

// summarize fills a cell's summary from its kept runs.
func (c *Cell) summarize() {
	runs := c.kept()
	med := func(f func(Measurement) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return median(v)
	}
	c.PerSecond = med(func(m Measurement) float64 { return m.PerSecond })
	c.P50Ms = med(func(m Measurement) float64 { return m.Latency.P50 })
	c.P99Ms = med(func(m Measurement) float64 { return m.Latency.P99 })
	c.RetriesPerCommand = med(func(m Measurement) float64 { return m.RetriesPerCommand })
	c.RoundTrips = med(func(m Measurement) float64 { return m.RoundTripsPer })
	c.Statements = med(func(m Measurement) float64 { return m.StatementsPer })
	c.PerSecondMin, c.PerSecondMax = 0, 0
	c.Conflicts, c.Rejected, c.Errors = 0, 0, 0
	for i, r := range runs {
		if i == 0 || r.PerSecond < c.PerSecondMin {
			c.PerSecondMin = r.PerSecond
		}
		c.PerSecondMax = max(c.PerSecondMax, r.PerSecond)
		c.Conflicts += r.Conflicts
		c.Rejected += r.Rejected
		c.Errors += r.Errors
	}
}

// median of v; the mean of the middle two for an even count.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// latencyOf summarizes durations (which it sorts).
func latencyOf(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	q := func(p float64) float64 {
		// Nearest rank: the smallest value with at least p of the
		// samples at or below it.
		i := int(float64(len(d))*p+0.999999) - 1
		return ms(d[min(max(i, 0), len(d)-1)])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(d[len(d)-1]), Mean: ms(sum / time.Duration(len(d)))}
}

// find returns the cell of a scenario, strategy, client count and history
// size, or nil.
func (r *Results) find(scenario, strategy string, clients, history int) *Cell {
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Scenario == scenario && c.Strategy == strategy && c.Clients == clients && c.History == history {
			return c
		}
	}
	return nil
}

// clientCounts lists the client counts a scenario's cells ran at, ascending.
func (r *Results) clientCounts(scenario string) []int {
	var out []int
	for _, c := range r.Cells {
		if c.Scenario == scenario && !slices.Contains(out, c.Clients) {
			out = append(out, c.Clients)
		}
	}
	slices.Sort(out)
	return out
}

// strategiesOf lists the strategies of a scenario's cells in run order.
func (r *Results) strategiesOf(scenario string) []string {
	var out []string
	for _, c := range r.Cells {
		if c.Scenario == scenario && !slices.Contains(out, c.Strategy) {
			out = append(out, c.Strategy)
		}
	}
	return out
}

// historySizes lists the history sizes measured, ascending.
func (r *Results) historySizes() []int {
	var out []int
	for _, c := range r.Cells {
		if c.Scenario == ScenarioHistory && !slices.Contains(out, c.History) {
			out = append(out, c.History)
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// EffectOrdering compares the ordered run of one offered rate with the
// unordered run of the same rate and River configuration, measured just
// before it on the same client.
type EffectOrdering struct {
	Variant      string  `json:"variant"`
	Rate         int     `json:"rate_per_s"`
	Fraction     float64 `json:"fraction,omitempty"`
	OrderingKeys int     `json:"ordering_keys"`

	Unordered EffectSide `json:"unordered"`
	Ordered   EffectSide `json:"ordered"`

	// Ratios are the ordered run's figures divided by the unordered
	// run's: effects/s, and p50 and p99 from commit to the effect's end
	// (0 when the unordered one is 0).
	EffectsPerSecondRatio float64 `json:"effects_per_s_ratio"`
	ToDoneP50Ratio        float64 `json:"to_done_p50_ratio"`
	ToDoneP99Ratio        float64 `json:"to_done_p99_ratio"`
}

// EffectSide is one side of an EffectOrdering.
type EffectSide struct {
	CommandsPerSecond float64 `json:"commands_per_s"`
	EffectsPerSecond  float64 `json:"effects_per_s"`
	// ToDone is from the event's insert to the end of its effect.
	ToDone          Latency `json:"to_done"`
	Commands        int64   `json:"commands"`
	Effects         int64   `json:"effects"`
	Missing         int64   `json:"missing"`
	Duplicates      int64   `json:"duplicates"`
	OrderChecks     int64   `json:"order_checks,omitempty"`
	OrderViolations int64   `json:"order_violations"`
	Sustained       bool    `json:"sustained"`
}

func effectSide(e EffectRun) EffectSide {
	return EffectSide{CommandsPerSecond: e.PerSecond, EffectsPerSecond: e.EffectsPerSecond, ToDone: e.ToDone, Commands: e.Commands, Effects: e.Effects,
		Missing: e.Missing, Duplicates: e.Duplicates, OrderChecks: e.OrderChecks, OrderViolations: e.OrderViolations, Sustained: e.Sustained()}
}

// effectOrdering pairs each ordered effect run with the unordered run of
// its rate and River configuration.
func (r *Results) effectOrdering() []EffectOrdering {
	var out []EffectOrdering
	for _, o := range r.Effects {
		if o.OrderingKeys == 0 {
			continue
		}
		i := slices.IndexFunc(r.Effects, func(u EffectRun) bool {
			return u.OrderingKeys == 0 && u.Variant == o.Variant && u.Rate == o.Rate && u.Fraction == o.Fraction
		})
		if i < 0 {
			continue
		}
		u := r.Effects[i]
		ratio := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		out = append(out, EffectOrdering{Variant: o.Variant, Rate: o.Rate, Fraction: o.Fraction, OrderingKeys: o.OrderingKeys,
			Unordered: effectSide(u), Ordered: effectSide(o),
			EffectsPerSecondRatio: ratio(o.EffectsPerSecond, u.EffectsPerSecond),
			ToDoneP50Ratio:        ratio(o.ToDone.P50, u.ToDone.P50),
			ToDoneP99Ratio:        ratio(o.ToDone.P99, u.ToDone.P99)})
	}
	return out
}
