package projections

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of projections. A nil *Metrics
// records nothing.
type Metrics struct {
	batches  *prometheus.CounterVec
	events   *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	leaders  *prometheus.GaugeVec

	mu     sync.Mutex
	client *Client
	// collectErrors counts scrapes that could not read the checkpoints.
	collectErrors prometheus.Counter
}

// Descriptions of the metrics read from the database at scrape time.
var (
	checkpointDesc = prometheus.NewDesc("factos_projection_checkpoint",
		"The projection's checkpoint: every matching event at or below it is applied.", []string{"projection"}, nil)
	lagEventsDesc = prometheus.NewDesc("factos_projection_lag_events",
		"Log positions after the projection's checkpoint: the log's head minus the checkpoint.", []string{"projection"}, nil)
	lagSecondsDesc = prometheus.NewDesc("factos_projection_lag_seconds",
		"Age of the oldest committed event after the projection's checkpoint (0 when caught up).", []string{"projection"}, nil)
	stuckDesc = prometheus.NewDesc("factos_projection_stuck",
		"1 while the projection's last attempts failed (it retries and does not move on), else 0.", []string{"projection"}, nil)
	runningDesc = prometheus.NewDesc("factos_projection_running",
		"1 while some process holds the projection's lease, else 0.", []string{"projection"}, nil)
)

// NewMetrics creates the metrics and registers them with reg. Pass them
// in Config.Metrics.
//
//   - factos_projection_checkpoint{projection}: the checkpoint position;
//   - factos_projection_lag_events{projection}: positions behind the head;
//   - factos_projection_lag_seconds{projection}: age of the oldest event
//     not yet applied;
//   - factos_projection_stuck{projection}, factos_projection_running{projection};
//   - factos_projection_batches_total{projection}: batches committed;
//   - factos_projection_events_total{projection}: events applied;
//   - factos_projection_errors_total{projection,stage}: failed attempts
//     (stage read, apply, or stale: the checkpoint moved under the runner);
//   - factos_projection_batch_duration_seconds{projection}: one batch,
//     from its transaction's start to its commit;
//   - factos_projection_leader{projection}: 1 in the process running it;
//   - factos_projection_collect_errors_total: scrapes that could not read
//     the checkpoints (the scrape then goes on without them).
//
// The checkpoint, lag, stuck and running gauges are read from the
// database at scrape time, so that every process reports them, whether it
// runs the projection or not, and a dead runner shows as growing lag.
// Alert on the maximum over processes.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_projection_batches_total",
			Help: "Batches of events a projection committed."}, []string{"projection"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_projection_events_total",
			Help: "Events a projection applied."}, []string{"projection"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_projection_errors_total",
			Help: "Failed attempts of a projection's runner, by stage."}, []string{"projection", "stage"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "factos_projection_batch_duration_seconds",
			Help:    "Duration of one batch, from its transaction's start to its commit.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"projection"}),
		leaders: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "factos_projection_leader",
			Help: "1 in the process that runs the projection, else 0."}, []string{"projection"}),
		collectErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "factos_projection_collect_errors_total",
			Help: "Scrapes that could not read the projections' checkpoints from the database."}),
	}
	for _, c := range []prometheus.Collector{m.batches, m.events, m.errors, m.duration, m.leaders, (*statusCollector)(m)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) attach(c *Client) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.client = c
	m.mu.Unlock()
	for _, n := range c.reg.order {
		m.leaders.WithLabelValues(n).Set(0)
	}
}

func (m *Metrics) batch(projection string, events int, d time.Duration) {
	if m != nil {
		m.batches.WithLabelValues(projection).Inc()
		m.events.WithLabelValues(projection).Add(float64(events))
		m.duration.WithLabelValues(projection).Observe(d.Seconds())
	}
}

func (m *Metrics) failed(projection, stage string) {
	if m != nil {
		m.errors.WithLabelValues(projection, stage).Inc()
	}
}

func (m *Metrics) leader(projection string, on bool) {
	if m != nil {
		m.leaders.WithLabelValues(projection).Set(boolFloat(on))
	}
}

// statusCollector reports the checkpoint gauges from Client.Status at
// scrape time. A failed read is counted rather than reported as an invalid
// metric, which would make the whole scrape fail (see reactors' job
// collector).
type statusCollector Metrics

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{checkpointDesc, lagEventsDesc, lagSecondsDesc, stuckDesc, runningDesc} {
		ch <- d
	}
	c.collectErrors.Describe(ch)
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() { ch <- c.collectErrors }()
	c.mu.Lock()
	client := c.client
	c.mu.Unlock()
	if client == nil || len(client.reg.order) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	sts, err := client.Status(ctx)
	if err != nil {
		c.collectErrors.Inc()
		return
	}
	gauge := func(d *prometheus.Desc, v float64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	for _, s := range sts {
		gauge(checkpointDesc, float64(s.Position), s.Name)
		gauge(lagEventsDesc, float64(s.LagEvents), s.Name)
		gauge(lagSecondsDesc, s.LagSeconds, s.Name)
		gauge(stuckDesc, boolFloat(s.State == StateStuck), s.Name)
		gauge(runningDesc, boolFloat(s.Running), s.Name)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
