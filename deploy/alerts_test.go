package deploy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// TestAlertsFire evaluates each rendered alert expression with Prometheus'
// own query engine against series written for it: it must find something
// where the worker is in trouble, and nothing where it is fine, nor where
// another release is in trouble. (The rules' `for` is Prometheus' pending
// period, not evaluated here.) The series carry the target labels the
// chart's ServiceMonitor gives them: release "factos" in namespace "factos",
// so job "factos-factos-worker", on two pods.
func TestAlertsFire(t *testing.T) {
	t.Parallel()
	r := one[*prometheusRule](t, mustRender(t, nil, minimal+"prometheusRule:\n  enabled: true\n"))
	exprs := map[string]string{}
	for _, ru := range r.Spec.Groups[0].Rules {
		exprs[ru.Alert] = ru.Expr
	}
	// A series of ours on pod p, and one of another release.
	ours := func(metric, labels, pod string) string {
		return metric + `{namespace="factos",job="factos-factos-worker",pod="` + pod + `"` + labels + `}`
	}
	theirs := func(metric, labels string) string {
		return metric + `{namespace="other",job="other-factos-worker",pod="o1"` + labels + `}`
	}
	// histogram writes a lag histogram whose observations all fall in the
	// bucket ending at le (1s apart, 20 minutes at one a second).
	histogram := func(series func(metric, labels string) string, le string) string {
		var b strings.Builder
		bounds := []string{"1", "30", "60", "+Inf"}
		for i, bound := range bounds {
			values := "0x20" // buckets are cumulative: below le, none
			if i >= slices.Index(bounds, le) {
				values = "0+60x20"
			}
			b.WriteString(series("factos_reaction_lag_seconds_bucket", `,reactor="announce",le="`+bound+`"`) + " " + values + "\n")
		}
		return b.String()
	}
	p1 := func(metric, labels string) string { return ours(metric, labels, "p1") }
	p2 := func(metric, labels string) string { return ours(metric, labels, "p2") }

	for _, tc := range []struct {
		alert, name string
		series      string // promqltest load lines, one a minute from 0
		fires       bool
	}{
		{"FactosEffectsDiscarded", "a discard in the last minutes",
			p1("factos_effect_discards_total", `,kind="announce",reason="permanent"`) + " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 1\n", true},
		{"FactosEffectsDiscarded", "discards long ago",
			p1("factos_effect_discards_total", `,kind="announce",reason="permanent"`) + " 0 3x20\n", false},
		{"FactosEffectsDiscarded", "another release's discards",
			theirs("factos_effect_discards_total", `,kind="announce",reason="permanent"`) + " 0x18 1 1\n", false},

		{"FactosReactionLagHigh", "reactions start a minute late", histogram(p1, "60"), true},
		{"FactosReactionLagHigh", "reactions start within a second", histogram(p1, "1"), false},
		{"FactosReactionLagHigh", "another release is late", histogram(theirs, "60"), false},

		// factos_river_jobs is the same table read by every pod: 3000 from
		// each of two pods is 3000 jobs, under the 5000 threshold.
		{"FactosReactionBacklog", "6000 reaction jobs wait",
			p1("factos_river_jobs", `,kind="factos.reactions",state="available"`) + " 6000x20\n" +
				p2("factos_river_jobs", `,kind="factos.reactions",state="available"`) + " 6000x20\n", true},
		{"FactosReactionBacklog", "3000 reaction jobs seen by two pods",
			p1("factos_river_jobs", `,kind="factos.reactions",state="available"`) + " 3000x20\n" +
				p2("factos_river_jobs", `,kind="factos.reactions",state="available"`) + " 3000x20\n", false},
		{"FactosReactionBacklog", "an effect backlog is not a reaction backlog",
			p1("factos_river_jobs", `,kind="factos.effect.announce_ticket_sale",state="available"`) + " 9000x20\n", false},
		{"FactosReactionBacklog", "completed reaction jobs",
			p1("factos_river_jobs", `,kind="factos.reactions",state="completed"`) + " 90000x20\n", false},

		// factos_effect_sequence_keys is read from the database by every
		// pod: the same value from both.
		{"FactosEffectSequenceHalted", "two keys halted, seen by two pods",
			p1("factos_effect_sequence_keys", `,state="halted"`) + " 0x5 2x15\n" + p2("factos_effect_sequence_keys", `,state="halted"`) + " 0x5 2x15\n" +
				p1("factos_effect_sequence_keys", `,state="running"`) + " 40x20\n", true},
		{"FactosEffectSequenceHalted", "keys running and waiting, none halted",
			p1("factos_effect_sequence_keys", `,state="running"`) + " 40x20\n" + p1("factos_effect_sequence_keys", `,state="waiting"`) + " 9x20\n" +
				p1("factos_effect_sequence_keys", `,state="halted"`) + " 0x20\n", false},
		{"FactosEffectSequenceHalted", "a key halted a moment, then retried",
			p1("factos_effect_sequence_keys", `,state="halted"`) + " 0x10 1x2 0x8\n", false},
		{"FactosEffectSequenceHalted", "another release's key halted",
			theirs("factos_effect_sequence_keys", `,state="halted"`) + " 1x20\n", false},

		{"FactosProjectionLagEvents", "a projection 20000 events behind",
			p1("factos_projection_lag_events", `,projection="sales"`) + " 20000x20\n", true},
		{"FactosProjectionLagEvents", "a projection 500 events behind",
			p1("factos_projection_lag_events", `,projection="sales"`) + " 500x20\n" + theirs("factos_projection_lag_events", `,projection="sales"`) + " 99999x20\n", false},
		{"FactosProjectionLagSeconds", "a projection ten minutes behind",
			p2("factos_projection_lag_seconds", `,projection="sales"`) + " 600x20\n", true},
		{"FactosProjectionLagSeconds", "a projection a second behind",
			p2("factos_projection_lag_seconds", `,projection="sales"`) + " 1x20\n", false},

		// factos_projection_stuck and _running are read from the database
		// by every pod: the same values from both.
		{"FactosProjectionStuck", "a projection stuck, seen by two pods",
			p1("factos_projection_stuck", `,projection="sales"`) + " 0x5 1x15\n" + p2("factos_projection_stuck", `,projection="sales"`) + " 0x5 1x15\n" +
				p1("factos_projection_stuck", `,projection="seats"`) + " 0x20\n", true},
		{"FactosProjectionStuck", "a projection stuck a while, then moving on",
			p1("factos_projection_stuck", `,projection="sales"`) + " 0x5 1x10 0x5\n", false},
		{"FactosProjectionStuck", "another release's projection stuck",
			p1("factos_projection_stuck", `,projection="sales"`) + " 0x20\n" + theirs("factos_projection_stuck", `,projection="sales"`) + " 1x20\n", false},
		{"FactosProjectionNotRunning", "no process holds a projection's lease",
			p1("factos_projection_running", `,projection="sales"`) + " 1x5 0x15\n" + p2("factos_projection_running", `,projection="sales"`) + " 1x5 0x15\n" +
				p1("factos_projection_running", `,projection="seats"`) + " 1x20\n", true},
		// The pods read the lease at different instants (around a
		// takeover): held if any of them saw it held.
		{"FactosProjectionNotRunning", "one pod sees the lease held",
			p1("factos_projection_running", `,projection="sales"`) + " 0x20\n" + p2("factos_projection_running", `,projection="sales"`) + " 1x20\n", false},
		{"FactosProjectionNotRunning", "another release's projection not running",
			p2("factos_projection_running", `,projection="sales"`) + " 1x20\n" + theirs("factos_projection_running", `,projection="sales"`) + " 0x20\n", false},

		{"FactosWorkerUnavailable", "an unready pod",
			`kube_deployment_status_replicas_unavailable{namespace="factos",deployment="factos-factos-worker"} 1x20` + "\n", true},
		{"FactosWorkerUnavailable", "every pod ready",
			`kube_deployment_status_replicas_unavailable{namespace="factos",deployment="factos-factos-worker"} 0x20` + "\n" +
				`kube_deployment_status_replicas_unavailable{namespace="factos",deployment="another"} 2x20` + "\n", false},

		{"FactosWorkerScrapeFailing", "a pod does not answer", p1("up", "") + " 0x20\n" + p2("up", "") + " 1x20\n", true},
		{"FactosWorkerScrapeFailing", "every pod answers", p1("up", "") + " 1x20\n" + theirs("up", "") + " 0x20\n", false},
	} {
		t.Run(tc.alert+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			expr, ok := exprs[tc.alert]
			if !ok {
				t.Fatalf("no alert %s", tc.alert)
			}
			storage := promqltest.LoadedStorage(t, "load 1m\n"+indent(tc.series))
			engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
			q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, time.Unix(0, 0).Add(20*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			res := q.Exec(context.Background())
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			v, err := res.Vector()
			if err != nil {
				t.Fatal(err)
			}
			if fires := len(v) > 0; fires != tc.fires {
				t.Errorf("%s fires = %v (%v), want %v\n%s", tc.alert, fires, v, tc.fires, expr)
			}
			if tc.fires {
				checkAlertLabels(t, tc.alert, v)
			}
		})
	}
}

// checkAlertLabels: what the alert's annotations name is in its series.
func checkAlertLabels(t *testing.T, alert string, v promql.Vector) {
	t.Helper()
	want := map[string][]string{
		"FactosEffectsDiscarded":     {"kind", "reason", "namespace"},
		"FactosReactionLagHigh":      {"reactor", "namespace"},
		"FactosReactionBacklog":      {"namespace"},
		"FactosEffectSequenceHalted": {"namespace"},
		"FactosProjectionLagEvents":  {"projection", "namespace"},
		"FactosProjectionLagSeconds": {"projection", "namespace"},
		"FactosProjectionStuck":      {"projection", "namespace"},
		"FactosProjectionNotRunning": {"projection", "namespace"},
		"FactosWorkerUnavailable":    {"deployment", "namespace"},
		"FactosWorkerScrapeFailing":  {"pod", "namespace"},
	}[alert]
	for _, s := range v {
		for _, l := range want {
			if s.Metric.Get(l) == "" {
				t.Errorf("%s: series %s lacks label %s, which its annotations name", alert, s.Metric, l)
			}
		}
	}
}

func indent(lines string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(lines, "\n"), "\n", "\n  ") + "\n"
}
