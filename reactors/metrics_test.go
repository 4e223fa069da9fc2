package reactors_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	m, err := reactors.NewMetrics(reg, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	b.reg = reactors.NewRegistry(&reactors.Config{Metrics: m})
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	addFlaky(t, b, "flaky", 2, func(reactors.Effect[string]) error {
		attempts++
		return errors.New("nope")
	})
	env := testriver.Start(t, b.pool, b.reg, nil)
	b.sell(t, env.Store, "c1", 2)
	dispatchNote(t, b, env.Store, "n")
	testriver.WaitFor(t, waitLong, "jobs to finish", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded')`) == 0 &&
			b.count(t, `SELECT count(*) FROM river_job WHERE state = 'discarded'`) == 1, nil
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mm := range f.GetMetric() {
			labels := ""
			for _, l := range mm.GetLabel() {
				labels += "," + l.GetName() + "=" + l.GetValue()
			}
			key := f.GetName() + "{" + strings.TrimPrefix(labels, ",") + "}"
			switch {
			case mm.GetHistogram() != nil:
				got[key] = float64(mm.GetHistogram().GetSampleCount())
			case mm.GetCounter() != nil:
				got[key] = mm.GetCounter().GetValue()
			case mm.GetGauge() != nil:
				got[key] = mm.GetGauge().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"factos_reaction_lag_seconds{reactor=announce_sales}":                         2,
		"factos_reactions_total{outcome=reacted,reactor=announce_sales}":              2,
		"factos_effect_duration_seconds{kind=announce_ticket_sale,outcome=completed}": 2,
		"factos_effect_retries_total{kind=flaky}":                                     1,
		"factos_effect_discards_total{kind=flaky,reason=exhausted}":                   1,
		"factos_river_jobs{kind=factos.effect.announce_ticket_sale,state=completed}":  2,
		"factos_river_jobs{kind=factos.effect.flaky,state=discarded}":                 1,
		"factos_river_jobs{kind=factos.reactions,state=completed}":                    3, // one per dispatch: 2 sales, 1 note
		// The announcements are ordered (by buyer), and all done.
		"factos_effect_sequence_effects{state=waiting}": 0,
		"factos_effect_sequence_keys{state=halted}":     0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// A scrape while the database is unreachable still answers, with every
// metric but the job counts, and counts the failed read: a database outage
// is when the pool and failure metrics matter most.
func TestMetricsScrapeSurvivesAnUnreachableDatabase(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dead, err := pgxpool.New(context.Background(), "postgres://factos@"+closed+"/factos?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	b := setup(t)
	for _, tc := range []struct {
		name   string
		pool   *pgxpool.Pool
		errors float64
	}{
		{"reachable", b.pool, 0},
		{"unreachable", dead, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			if _, err := reactors.NewMetrics(reg, tc.pool); err != nil {
				t.Fatal(err)
			}
			// promhttp's default error handling fails the whole scrape on
			// any collector error; the job collector must not cause one.
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			body := rec.Body.String()
			if rec.Code != http.StatusOK {
				t.Fatalf("scrape: %d %s", rec.Code, body)
			}
			want := fmt.Sprintf("factos_river_jobs_collect_errors_total %g\n", tc.errors)
			if !strings.Contains(body, want) {
				t.Errorf("scrape lacks %q:\n%s", want, body)
			}
		})
	}
}
