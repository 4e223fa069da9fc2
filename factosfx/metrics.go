package factosfx

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// Metrics holds the process's Prometheus registry and the factos metrics.
type Metrics struct {
	Registry    *prometheus.Registry
	Reactors    *reactors.Metrics
	Projections *projections.Metrics

	dispatches *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	retries    *prometheus.CounterVec

	temporalOnce sync.Once
	temporal     client.MetricsHandler
	temporalErr  error
}

// NewMetrics registers the Go and process collectors, the reactor and
// projection metrics, and the dispatch metrics:
//
//   - factos_dispatches_total{op,outcome,strategy}
//   - factos_dispatch_duration_seconds{op,outcome}
//   - factos_dispatch_retries_total{op}
//   - factos_pool_connections{state} (acquired, idle, total)
func NewMetrics(pool *pgxpool.Pool) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	rm, err := reactors.NewMetrics(reg, pool)
	if err != nil {
		return nil, err
	}
	pm, err := projections.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		Registry:    reg,
		Reactors:    rm,
		Projections: pm,
		dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_dispatches_total",
			Help: "Dispatches and appends by outcome."}, []string{"op", "outcome", "strategy"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "factos_dispatch_duration_seconds",
			Help:    "Duration of dispatches and appends, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"op", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "factos_dispatch_retries_total",
			Help: "Extra attempts dispatches needed (conflicts, serialization failures)."}, []string{"op"}),
	}
	poolGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "factos_pool_connections", Help: "Database pool connections.",
		ConstLabels: prometheus.Labels{"state": "total"}}, func() float64 { return float64(pool.Stat().TotalConns()) })
	poolAcquired := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "factos_pool_connections", Help: "Database pool connections.",
		ConstLabels: prometheus.Labels{"state": "acquired"}}, func() float64 { return float64(pool.Stat().AcquiredConns()) })
	poolIdle := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "factos_pool_connections", Help: "Database pool connections.",
		ConstLabels: prometheus.Labels{"state": "idle"}}, func() float64 { return float64(pool.Stat().IdleConns()) })
	for _, c := range []prometheus.Collector{
		m.dispatches, m.duration, m.retries, poolGauge, poolAcquired, poolIdle,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// temporalMetricsHandler returns a Temporal SDK metrics handler that
// reports into the registry: Temporal's OpenTelemetry handler on an
// OpenTelemetry meter provider whose only reader is the OpenTelemetry
// Prometheus exporter registered there. (Temporal's other route, tally,
// would bring a second metrics library.) The SDK's metrics appear as
// temporal_* beside factos_*.
func (m *Metrics) temporalMetricsHandler(l *slog.Logger) (client.MetricsHandler, error) {
	m.temporalOnce.Do(func() {
		exp, err := otelprom.New(otelprom.WithRegisterer(m.Registry), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
		if err != nil {
			m.temporalErr = fmt.Errorf("error registering the Temporal SDK metrics: %w", err)
			return
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
		m.temporal = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			Meter:                mp.Meter("go.temporal.io/sdk"),
			UseMonotonicCounters: true,
			OnError:              func(err error) { l.Warn("temporal metrics", "err", err) },
		})
	})
	return m.temporal, m.temporalErr
}

// ObserveDispatch is an eventstore.Config.Observer.
func (m *Metrics) ObserveDispatch(info eventstore.DispatchInfo) {
	m.dispatches.WithLabelValues(info.Op, info.Outcome, string(info.Strategy)).Inc()
	m.duration.WithLabelValues(info.Op, info.Outcome).Observe(info.Duration.Seconds())
	if info.Attempts > 1 {
		m.retries.WithLabelValues(info.Op).Add(float64(info.Attempts - 1))
	}
}
