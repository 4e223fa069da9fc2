package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
)

// Scenario names, as accepted by Config.Scenarios and the -scenarios flag.
const (
	// ScenarioDisjoint: every command decides on a context of its own
	// (RegisterUser with a fresh username).
	ScenarioDisjoint = "disjoint"
	// ScenarioHot: every buyer races for the capacity of the same concert.
	ScenarioHot = "hot"
	// ScenarioMix: MixHotPercent of the commands are hot, the rest disjoint.
	ScenarioMix = "mix"
	// ScenarioStream: stream-revision dispatch (a Handler without Query) on
	// a new stream per command.
	ScenarioStream = "stream"
	// ScenarioHistory: one selective command with HistorySizes events
	// already stored.
	ScenarioHistory = "history"
	// ScenarioCeiling: the disjoint scenario's events and tag rows inserted
	// with the store's INSERT statement and nothing else: no lock, no read,
	// no check. It runs inside the disjoint scenario, next to the
	// strategies.
	ScenarioCeiling = "ceiling"
	// ScenarioCatchUp: Store.ReadAfter throughput over a stored log,
	// unfiltered and filtered, with and without concurrent writers.
	ScenarioCatchUp = "catchup"
	// ScenarioTail: a caught-up reader tailing the log while commands are
	// dispatched at fixed rates (TailRates) under keys; latency from a
	// record's insert to the read that returns it.
	ScenarioTail = "tail"
	// ScenarioOutbox: the disjoint command with and without the outbox
	// (one River reaction job inserted in every dispatch transaction).
	ScenarioOutbox = "outbox"
	// ScenarioTracing: the disjoint command with the outbox, with tracing
	// off (the default no-op provider) and on (an SDK provider sampling
	// every dispatch, spans batched to a discarding exporter, the trace
	// context written into every event's and job's metadata).
	ScenarioTracing = "tracing"
	// ScenarioEffects: commands at offered rates (EffectSteps) with River
	// running reactions and effects; latency from commit to effect, with
	// unordered and with ordered effects (EffectOrderingKeys).
	ScenarioEffects = "effects"
	// ScenarioProjections: the disjoint command with and without three
	// projections running in the process.
	ScenarioProjections = "projections"
	// ScenarioProjectionCatchUp: a projection catching up from position 0
	// on CatchUpEvents stored events, at each of ProjectionBatchSizes.
	ScenarioProjectionCatchUp = "projection-catchup"
	// ScenarioProjectionLag: commands at fixed rates (ProjectionRates)
	// with a live projection; latency from commit to the view.
	ScenarioProjectionLag = "projection-lag"
	// ScenarioTemporal: the disjoint command sent from a Temporal workflow
	// through the regular and through the local dispatch activity, against
	// the same command dispatched in process. Needs TemporalAddress or
	// StartTemporal.
	ScenarioTemporal = "temporal"
)

// AllScenarios lists every scenario in the order a run takes them.
var AllScenarios = []string{ScenarioDisjoint, ScenarioCeiling, ScenarioHot, ScenarioMix, ScenarioStream, ScenarioHistory, ScenarioCatchUp, ScenarioTail, ScenarioOutbox, ScenarioTracing, ScenarioEffects,
	ScenarioProjections, ScenarioProjectionCatchUp, ScenarioProjectionLag, ScenarioTemporal}

// StrategySerializable labels the SERIALIZABLE-isolation baseline: not a
// strategy the store offers (it does not keep the guarantee in position
// order, docs/consistency.md), measured beside the offered ones to show
// what the lock schemes save.
const StrategySerializable eventstore.LockStrategy = "serializable"

// AllStrategies are the lock strategies compared by default.
var AllStrategies = []eventstore.LockStrategy{eventstore.LockKeys, eventstore.LockTable, StrategySerializable}

// Defaults of Config.
const (
	DefaultDuration       = 3 * time.Second
	DefaultWarmup         = 500 * time.Millisecond
	DefaultMinCommands    = 100
	DefaultHighClients    = 64
	DefaultHighRepeats    = 3
	DefaultHotEpoch       = 100
	DefaultMixHotPercent  = 10
	DefaultCatchUpEvents  = 200_000
	DefaultCatchUpWriters = 4
	DefaultSampleInterval = 100 * time.Millisecond
	// DefaultMaxRate bounds the commands per second the hot scenario plans
	// concerts for. A run faster than this sees "concert not found"
	// rejections, which the report flags.
	DefaultMaxRate = 50_000
	// DefaultMaxOther and DefaultRemeasure: see Config.
	DefaultMaxOther  = 0.25
	DefaultRemeasure = 2
)

// DefaultClients are the client counts of every scenario.
var DefaultClients = []int{1, 4, 16, 64}

// DefaultEffectRates are the offered rates of the effects scenario,
// commands per second, when the run has no keys+outbox throughput to
// derive them from.
var DefaultEffectRates = []int{50, 200, 800}

// DefaultEffectOrderingKeys is how many ordering keys the ordered effects
// of the effects scenario are spread over, at each offered rate: each key
// gets one effect in that many, in sequence.
const DefaultEffectOrderingKeys = 64

// DefaultTailRates are the offered rates of the tail scenario, commands
// per second.
var DefaultTailRates = []int{200, 1000}

// DefaultProjectionBatchSizes are compared in the projection-catchup
// scenario.
var DefaultProjectionBatchSizes = []int{100, 500, 2000}

// DefaultProjectionRates are the offered rates of the projection-lag
// scenario, commands per second.
var DefaultProjectionRates = []int{100, 500}

// DefaultHistorySizes are the numbers of events stored before the history
// scenario's cells.
var DefaultHistorySizes = []int{1_000, 100_000, 1_000_000}

// Config configures a run. Databases is required; every other zero field
// takes its default.
type Config struct {
	// Databases hands out the databases the run works in: one per strategy
	// per scenario, and clones of the history templates. Required.
	Databases Databases

	// Scenarios to run, from AllScenarios. Default: all of them.
	Scenarios []string

	// Strategies compared in every scenario. Default: AllStrategies.
	Strategies []eventstore.LockStrategy

	// Clients are the client counts every scenario runs at.
	// Default: DefaultClients (1, 4, 16, 64).
	Clients []int

	// Duration of one measured cell. Default: DefaultDuration (3s).
	Duration time.Duration

	// MinCommands is the fewest commands a measured window decides: a
	// window lasts Duration, and longer until its clients have decided
	// MinCommands commands (at most two minutes), so that no cell is
	// measured on nothing when the machine is slow. Negative: none.
	// Default: DefaultMinCommands (100).
	MinCommands int

	// Warmup runs before every measured cell and is not counted: it opens
	// the pool's connections, prepares statements and warms caches.
	// Default: DefaultWarmup (500ms).
	Warmup time.Duration

	// Repeats is how often every cell is measured; the report gives the
	// median and the spread. Default: 1.
	Repeats int

	// HighClients and HighRepeats: cells with at least HighClients clients
	// are measured HighRepeats times instead, because on a small machine
	// they swing from one run to the next. Defaults: DefaultHighClients
	// (64) and DefaultHighRepeats (3).
	HighClients int
	HighRepeats int

	// TailRates are the offered rates of the tail scenario, commands per
	// second. Default: DefaultTailRates (200, 1000).
	TailRates []int

	// HistorySizes are the event counts stored before the history cells.
	// Default: DefaultHistorySizes (1k, 100k, 1M).
	HistorySizes []int

	// HotEpoch is how many tickets the hot scenario sells for one concert
	// before every buyer moves on to the next one. It keeps the hot
	// context (which the decider reads in full) the same size from the
	// first cell to the last, so cells and strategies compare fairly.
	// Default: DefaultHotEpoch (100).
	HotEpoch int

	// MixHotPercent is the share of hot commands in the mix scenario.
	// Default: DefaultMixHotPercent (10).
	MixHotPercent int

	// CatchUpEvents are stored before the catch-up reads.
	// Default: DefaultCatchUpEvents (200,000).
	CatchUpEvents int

	// CatchUpWriters dispatch disjoint commands while the catch-up reader
	// runs, in the "with writers" cases. Default: DefaultCatchUpWriters (4).
	CatchUpWriters int

	// EffectRates, if set, are fixed offered rates (commands per second)
	// of the effects scenario, each run once. Default: none; the rates are
	// EffectSteps.
	EffectRates []int

	// EffectSteps are the effects scenario's offered rates as fractions of
	// keys+outbox's throughput at 16 clients in the same run (or at the
	// most clients below 16), run in order until one is not sustained
	// (EffectRun.Sustained). Without the outbox scenario in the run,
	// DefaultEffectRates are run instead. Default: DefaultEffectSteps
	// (0.5 to 1 by tenths).
	EffectSteps []float64

	// EffectOrderingKeys is how many ordering keys the effects scenario's
	// ordered runs spread their effects over: at every offered rate, the
	// worker's default River configuration runs once with unordered
	// effects and once with each effect keyed "user-group:<n>" by its
	// command's number modulo EffectOrderingKeys. Default:
	// DefaultEffectOrderingKeys (64).
	EffectOrderingKeys int

	// ProjectionBatchSizes are the batch sizes the projection-catchup
	// scenario compares. Default: DefaultProjectionBatchSizes (100, 500,
	// 2000).
	ProjectionBatchSizes []int

	// ProjectionRates are the offered rates (commands per second) of the
	// projection-lag scenario. Default: DefaultProjectionRates (100, 500).
	ProjectionRates []int

	// TemporalAddress is the Temporal frontend of the temporal scenario;
	// TemporalNamespace its namespace. Default namespace: "default".
	TemporalAddress   string
	TemporalNamespace string

	// StartTemporal, when TemporalAddress is empty, starts a Temporal
	// server for the temporal scenario when that scenario begins (a
	// server starting up would disturb the scenarios before it) and
	// returns its address and how to stop it. One of the two is required
	// by the temporal scenario.
	StartTemporal func(context.Context) (address string, stop func(), err error)

	// MaxOther is how many cores other processes may keep busy during a
	// measured window before the window counts as disturbed and is
	// measured again (see Remeasure). It applies only when the server's
	// processes are visible, so that their CPU is not taken for another's.
	// Negative: never. Default: DefaultMaxOther (0.25).
	MaxOther float64

	// Remeasure bounds how often a disturbed window is measured again.
	// Negative: never. Default: DefaultRemeasure (2).
	Remeasure int

	// MaxAttempts is the stores' Config.MaxAttempts.
	// Default: eventstore.DefaultMaxAttempts, as an application runs.
	MaxAttempts int

	// SampleInterval is how often pg_stat_activity is sampled for wait
	// events during a cell. Negative: never. Default: DefaultSampleInterval
	// (100ms).
	SampleInterval time.Duration

	// Statements collects the top statements of every cell from
	// pg_stat_statements when the server has it loaded. Default: false.
	Statements bool

	// Explain runs EXPLAIN (ANALYZE, BUFFERS) on the statements a history
	// dispatch sent, at every history size. Default: false.
	Explain bool

	// MaxRate bounds the commands per second the hot scenario schedules
	// concerts for. Default: DefaultMaxRate.
	MaxRate int

	// ServerPID is the PostgreSQL postmaster's process id, to account the
	// server's CPU time per cell. 0: found from a backend's parent process
	// when the server runs on this machine, else not accounted.
	ServerPID int

	// Command is the command line recorded in the results. Default: none.
	Command string

	// Log receives progress lines. Default: discard.
	Log io.Writer
}

// QuickConfig returns a configuration for a smoke run that takes seconds:
// short cells, two client counts, small histories, no repeats. It keeps
// every scenario, so a quick run exercises all of the code.
func QuickConfig() Config {
	return Config{
		Duration:     200 * time.Millisecond,
		Warmup:       50 * time.Millisecond,
		MinCommands:  40,
		Clients:      []int{1, 4},
		HighRepeats:  1,
		HistorySizes: []int{100, 2_000},
		EffectSteps:  []float64{effectJudged, 0.75},
		// A quick window holds a hundred commands or so: few keys give
		// each of them a sequence to keep in order.
		EffectOrderingKeys: 8,
		TailRates:          []int{100},
		CatchUpEvents:      3_000,
		CatchUpWriters:     2,
		SampleInterval:     20 * time.Millisecond,
		Remeasure:          -1,
		Statements:         true,
		Explain:            true,

		ProjectionBatchSizes: []int{50, 500},
		ProjectionRates:      []int{100},
	}
}

// WithDefaults returns a copy with defaults filled in.
func (c Config) WithDefaults() Config {
	if len(c.Scenarios) == 0 {
		c.Scenarios = slices.Clone(AllScenarios)
	}
	if len(c.Strategies) == 0 {
		c.Strategies = slices.Clone(AllStrategies)
	}
	if len(c.Clients) == 0 {
		c.Clients = slices.Clone(DefaultClients)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Repeats, 1)
	def(&c.MinCommands, DefaultMinCommands)
	def(&c.HighClients, DefaultHighClients)
	def(&c.HighRepeats, DefaultHighRepeats)
	def(&c.HotEpoch, DefaultHotEpoch)
	def(&c.MixHotPercent, DefaultMixHotPercent)
	def(&c.CatchUpEvents, DefaultCatchUpEvents)
	def(&c.CatchUpWriters, DefaultCatchUpWriters)
	def(&c.MaxAttempts, eventstore.DefaultMaxAttempts)
	def(&c.MaxRate, DefaultMaxRate)
	def(&c.EffectOrderingKeys, DefaultEffectOrderingKeys)
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if len(c.HistorySizes) == 0 {
		c.HistorySizes = slices.Clone(DefaultHistorySizes)
	}
	if len(c.TailRates) == 0 {
		c.TailRates = slices.Clone(DefaultTailRates)
	}
	if len(c.EffectSteps) == 0 {
		c.EffectSteps = slices.Clone(DefaultEffectSteps)
	}
	if len(c.ProjectionBatchSizes) == 0 {
		c.ProjectionBatchSizes = slices.Clone(DefaultProjectionBatchSizes)
	}
	if len(c.ProjectionRates) == 0 {
		c.ProjectionRates = slices.Clone(DefaultProjectionRates)
	}
	if c.TemporalNamespace == "" {
		c.TemporalNamespace = "default"
	}
	if c.MaxOther == 0 {
		c.MaxOther = DefaultMaxOther
	}
	def(&c.Remeasure, DefaultRemeasure)
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Databases == nil {
		errs = append(errs, errors.New("field Databases is required"))
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			errs = append(errs, fmt.Errorf("field Scenarios: unknown scenario %q (want one of %v)", s, AllScenarios))
		}
	}
	for _, s := range c.Strategies {
		if _, err := eventstore.ParseLockStrategy(string(s)); err != nil && s != StrategySerializable {
			errs = append(errs, fmt.Errorf("field Strategies: %w", err))
		}
	}
	for _, n := range c.Clients {
		if n < 1 {
			errs = append(errs, fmt.Errorf("field Clients: %d is not a client count", n))
		}
	}
	for _, n := range c.EffectRates {
		if n < 1 || n > 1_000_000 {
			errs = append(errs, fmt.Errorf("field EffectRates: %d is not a rate (1..1000000 per second)", n))
		}
	}
	if c.EffectOrderingKeys < 0 {
		errs = append(errs, fmt.Errorf("field EffectOrderingKeys: %d is not a key count", c.EffectOrderingKeys))
	}
	for _, n := range c.TailRates {
		if n < 1 || n > 1_000_000 {
			errs = append(errs, fmt.Errorf("field TailRates: %d is not a rate (1..1000000 per second)", n))
		}
	}
	for _, f := range c.EffectSteps {
		if f <= 0 || f > 10 {
			errs = append(errs, fmt.Errorf("field EffectSteps: %v is not a fraction of a throughput (0..10]", f))
		}
	}
	for _, n := range c.ProjectionRates {
		if n < 1 || n > 1_000_000 {
			errs = append(errs, fmt.Errorf("field ProjectionRates: %d is not a rate (1..1000000 per second)", n))
		}
	}
	for _, n := range c.ProjectionBatchSizes {
		if n < 1 || n > projections.MaxBatchSize {
			errs = append(errs, fmt.Errorf("field ProjectionBatchSizes: %d is not a batch size (1..%d)", n, projections.MaxBatchSize))
		}
	}
	if c.has(ScenarioTemporal) && c.TemporalAddress == "" && c.StartTemporal == nil {
		errs = append(errs, errors.New("field TemporalAddress or StartTemporal is required by the temporal scenario"))
	}
	for _, n := range c.HistorySizes {
		if n < 0 {
			errs = append(errs, fmt.Errorf("field HistorySizes: %d is negative", n))
		}
	}
	for name, v := range map[string]int{"Repeats": c.Repeats, "HighRepeats": c.HighRepeats, "HotEpoch": c.HotEpoch, "MaxAttempts": c.MaxAttempts, "MaxRate": c.MaxRate} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("field %s must be at least 1, got %d", name, v))
		}
	}
	if c.MixHotPercent < 0 || c.MixHotPercent > 100 {
		errs = append(errs, fmt.Errorf("field MixHotPercent must be 0..100, got %d", c.MixHotPercent))
	}
	if c.Duration < 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("fields Duration and Warmup must not be negative"))
	}
	return errors.Join(errs...)
}

// repeats is how often a cell with n clients is measured.
func (c Config) repeats(n int) int {
	if n >= c.HighClients {
		return max(c.HighRepeats, c.Repeats)
	}
	return c.Repeats
}

func (c Config) has(scenario string) bool { return slices.Contains(c.Scenarios, scenario) }
