package reactors

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/internal/riversql"
)

// Metrics are the Prometheus metrics of reactions and effects. A nil
// *Metrics records nothing.
type Metrics struct {
	lag       *prometheus.HistogramVec
	reactions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	discards  *prometheus.CounterVec
	claimed   prometheus.Counter
}

// NewMetrics creates the metrics and registers them, plus a collector of
// River job counts by kind and state read from pool at scrape time.
//
//   - factos_reaction_lag_seconds{reactor}: commit of a record to the start
//     of its reaction (first attempt);
//   - factos_reactions_total{reactor,outcome}: reacted, duplicate, error;
//   - factos_reaction_jobs_claimed_total: reaction jobs a reaction claimed
//     from its queue and handled beside its own (Config.ReactionBatchSize);
//   - factos_effect_duration_seconds{kind,outcome}: one attempt of an effect;
//   - factos_effect_retries_total{kind}: attempts after the first;
//   - factos_effect_discards_total{kind,reason}: effects given up on
//     (permanent error, or attempts exhausted);
//   - factos_river_jobs{kind,state}: River jobs in the table;
//   - factos_effect_sequence_effects{state}: unfinished effects with an
//     ordering key: waiting, running, failed (halting their key);
//   - factos_effect_sequence_keys{state}: ordering keys with unfinished
//     effects, by their head's state: waiting, running, halted;
//   - factos_river_jobs_collect_errors_total: scrapes that could not read
//     the job or sequence counts (the database unreachable); the scrape
//     then goes on without them rather than failing as a whole.
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) (*Metrics, error) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "factos_reaction_lag_seconds",
			Help: "Time from a record's commit to the start of its reaction.", Buckets: buckets}, []string{"reactor"}),
		reactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_reactions_total",
			Help: "Reaction attempts by outcome."}, []string{"reactor", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "factos_effect_duration_seconds",
			Help: "Duration of one effect attempt.", Buckets: buckets}, []string{"kind", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_effect_retries_total",
			Help: "Effect attempts after the first."}, []string{"kind"}),
		discards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_effect_discards_total",
			Help: "Effects given up on."}, []string{"kind", "reason"}),
		claimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "factos_reaction_jobs_claimed_total",
			Help: "Reaction jobs a reaction claimed from its queue and handled beside its own."}),
	}
	for _, c := range []prometheus.Collector{m.lag, m.reactions, m.latency, m.retries, m.discards, m.claimed, newJobCollector(pool)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeLag(reactor string, d time.Duration) {
	if m != nil {
		m.lag.WithLabelValues(reactor).Observe(d.Seconds())
	}
}

func (m *Metrics) reaction(reactor, outcome string) {
	if m != nil {
		m.reactions.WithLabelValues(reactor, outcome).Inc()
	}
}

func (m *Metrics) claimedJobs(n int) {
	if m != nil {
		m.claimed.Add(float64(n))
	}
}

func (m *Metrics) effectDone(kind, outcome string, d time.Duration) {
	if m != nil {
		m.latency.WithLabelValues(kind, outcome).Observe(d.Seconds())
	}
}

func (m *Metrics) effectRetry(kind string) {
	if m != nil {
		m.retries.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) effectDiscard(kind, reason string) {
	if m != nil {
		m.discards.WithLabelValues(kind, reason).Inc()
	}
}

// jobCollector reports River job counts by kind and state at scrape time.
//
// A failed read is counted, not reported as an invalid metric: promhttp
// answers a scrape with any invalid metric with HTTP 500 and the error's
// text, so a database outage would hide every other metric (the pool, the
// dispatch failures) exactly when they matter, and show the database's
// user and name to whoever scrapes.
type jobCollector struct {
	pool   *pgxpool.Pool
	errors prometheus.Counter
}

var (
	jobsDesc        = prometheus.NewDesc("factos_river_jobs", "River jobs by kind and state.", []string{"kind", "state"}, nil)
	seqEffectsDesc  = prometheus.NewDesc("factos_effect_sequence_effects", "Unfinished effects with an ordering key, by state.", []string{"state"}, nil)
	seqKeysDesc     = prometheus.NewDesc("factos_effect_sequence_keys", "Ordering keys with unfinished effects, by the state of their head (halted: failed).", []string{"state"}, nil)
	seqEffectStates = []string{"waiting", "running", "failed"}
	seqKeyStates    = []string{"waiting", "running", "halted"}
)

// sequenceCountsSQL counts the unfinished ordered effects (through the
// partial index; finished ones are never scanned) by state, and the keys
// by their head's state.
const sequenceCountsSQL = `WITH u AS (
	SELECT ordering_key, state, position, reactor, ordinal FROM factos_effect_sequences
	WHERE state IN ('waiting', 'running', 'failed')
), h AS (
	SELECT DISTINCT ON (ordering_key) state FROM u ORDER BY ordering_key, position, reactor, ordinal
)
SELECT 'effects', state, count(*) FROM u GROUP BY state
UNION ALL
SELECT 'keys', CASE state WHEN 'failed' THEN 'halted' ELSE state END, count(*) FROM h GROUP BY state`

func newJobCollector(pool *pgxpool.Pool) *jobCollector {
	return &jobCollector{pool: pool, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "factos_river_jobs_collect_errors_total",
		Help: "Scrapes that could not read the River job counts from the database.",
	})}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- seqEffectsDesc
	ch <- seqKeysDesc
	c.errors.Describe(ch)
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() { ch <- c.errors }()
	// A scrape must not hang on a sick database.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	jobs, err := riversql.CountJobs(ctx, c.pool)
	if err != nil {
		c.errors.Inc()
		return
	}
	// Counts are sent only once both reads succeeded, so that a failure
	// reports none rather than some.
	metrics := make([]prometheus.Metric, 0, len(jobs))
	for _, j := range jobs {
		metrics = append(metrics, prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(j.N), j.Kind, j.State))
	}
	seq, err := c.sequenceCounts(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	for _, m := range append(metrics, seq...) {
		ch <- m
	}
}

// sequenceCounts reads the ordered effects' gauges, every state reported
// (zero included) so that alerts on halted keys see a series.
func (c *jobCollector) sequenceCounts(ctx context.Context) ([]prometheus.Metric, error) {
	rows, err := c.pool.Query(ctx, sequenceCountsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]map[string]int64{"effects": {}, "keys": {}}
	for rows.Next() {
		var what, state string
		var n int64
		if err := rows.Scan(&what, &state, &n); err != nil {
			return nil, err
		}
		counts[what][state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []prometheus.Metric
	for _, st := range seqEffectStates {
		out = append(out, prometheus.MustNewConstMetric(seqEffectsDesc, prometheus.GaugeValue, float64(counts["effects"][st]), st))
	}
	for _, st := range seqKeyStates {
		out = append(out, prometheus.MustNewConstMetric(seqKeysDesc, prometheus.GaugeValue, float64(counts["keys"][st]), st))
	}
	return out, nil
}
