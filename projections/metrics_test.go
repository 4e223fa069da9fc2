package projections_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/projections"
)

// The metrics report the checkpoint and the lag in events and seconds of
// every projection, batches and errors, from any process.
func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	m, err := projections.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("c")
	cfg.Metrics = m
	c := b.client(cfg, spec{name: "p", query: allEvents, applier: "c"})
	// Behind: nothing runs yet, and the event waits.
	if _, err := b.appendNotes("s", nil, "A", "B"); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, 10*time.Second, "the event to age", func() (bool, error) {
		st, err := c.StatusOf(b.ctx, "p")
		return err == nil && st.LagSeconds > 0.05, err
	})
	want := func(name string, check func(v float64) bool) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, mt := range mf.GetMetric() {
				var v float64
				switch {
				case mt.GetGauge() != nil:
					v = mt.GetGauge().GetValue()
				case mt.GetCounter() != nil:
					v = mt.GetCounter().GetValue()
				}
				if mt.GetLabel()[0].GetValue() == "p" && check(v) {
					return
				}
			}
		}
		t.Errorf("no %s{projection=p} as expected", name)
	}
	want("factos_projection_lag_events", func(v float64) bool { return v == 2 })
	want("factos_projection_lag_seconds", func(v float64) bool { return v > 0.05 })
	want("factos_projection_checkpoint", func(v float64) bool { return v == 0 })
	want("factos_projection_running", func(v float64) bool { return v == 0 })

	b.start(c)
	if err := c.WaitFor(b.ctx, "p", 2); err != nil {
		t.Fatal(err)
	}
	want("factos_projection_lag_events", func(v float64) bool { return v == 0 })
	want("factos_projection_lag_seconds", func(v float64) bool { return v == 0 })
	want("factos_projection_checkpoint", func(v float64) bool { return v == 2 })
	want("factos_projection_running", func(v float64) bool { return v == 1 })
	want("factos_projection_leader", func(v float64) bool { return v == 1 })
	want("factos_projection_batches_total", func(v float64) bool { return v >= 1 })
	want("factos_projection_events_total", func(v float64) bool { return v == 2 })
	want("factos_projection_stuck", func(v float64) bool { return v == 0 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "factos_projection_batch_duration_seconds") {
		t.Errorf("no batch duration histogram in %v", names)
	}
}
