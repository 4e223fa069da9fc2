package bench

import (
	"fmt"
	"math"
	"strings"

	"github.com/factos-go/factos/eventstore"
)

// The goals the store is measured against, each judged from cells of the
// same run so that the machine's speed cancels out.

// Target is one goal and how the run fared.
type Target struct {
	Name string `json:"name"`
	// Goal states the goal.
	Goal string `json:"goal"`
	// Checks are the comparisons the goal was judged on, one per client
	// count or history size.
	Checks []Check `json:"checks"`
	// Met is set when every check passed; a target without checks (its
	// cells did not run) is not met.
	Met bool `json:"met"`
}

// Check is one comparison: a measured value against its bound.
type Check struct {
	Where string  `json:"where"`
	Value float64 `json:"value"`
	// Bound is what Value must reach (at least, or at most: see Goal).
	Bound float64 `json:"bound"`
	Pass  bool    `json:"pass"`
	// Detail gives the figures the value came from.
	Detail string `json:"detail"`
}

const (
	keys  = string(eventstore.LockKeys)
	table = string(eventstore.LockTable)
	ser   = string(StrategySerializable)
)

// evaluate judges the targets from the results' cells.
func (r *Results) evaluate() {
	r.Targets = nil
	add := func(t Target) {
		t.Met = len(t.Checks) > 0
		for _, c := range t.Checks {
			t.Met = t.Met && c.Pass
		}
		r.Targets = append(r.Targets, t)
	}

	// 1. keys at least twice table on disjoint contexts, 16 clients up.
	t := Target{Name: "disjoint: keys >= 2x table", Goal: "commands/s of keys divided by table's on the disjoint scenario is at least 2 at every client count from 16 up"}
	t.Checks = r.throughputRatios(ScenarioDisjoint, keys, table, 16, 2, func(k, tb *Cell) string {
		return fmt.Sprintf("keys %.0f/s, table %.0f/s", k.PerSecond, tb.PerSecond)
	})
	add(t)

	// 2. keys within 10% of table on the hot context.
	t = Target{Name: "hot: keys within 10% of table", Goal: "commands/s of keys divided by table's on the hot scenario is at least 0.9 at every client count (faster is fine)"}
	t.Checks = r.throughputRatios(ScenarioHot, keys, table, 0, 0.9, func(k, tb *Cell) string {
		return fmt.Sprintf("keys %.0f/s, table %.0f/s", k.PerSecond, tb.PerSecond)
	})
	add(t)

	// 3. keys never conflicts or retries on disjoint contexts.
	t = Target{Name: "disjoint: keys without conflicts or retries", Goal: "keys has zero conflicts and zero retries on the disjoint scenario at every client count (serializable's false conflicts shown for comparison)"}
	for _, n := range r.clientCounts(ScenarioDisjoint) {
		k := r.find(ScenarioDisjoint, keys, n, 0)
		if k == nil {
			continue
		}
		var retries int64
		for _, m := range k.Runs {
			retries += m.Retries
		}
		detail := fmt.Sprintf("keys: %d conflicts, %d retries", k.Conflicts, retries)
		if s := r.find(ScenarioDisjoint, ser, n, 0); s != nil {
			var sr int64
			for _, m := range s.Runs {
				sr += m.Retries
			}
			detail += fmt.Sprintf("; serializable: %d conflicts, %d retries (%.3f per command)", s.Conflicts, sr, s.RetriesPerCommand)
		}
		v := float64(k.Conflicts + retries)
		t.Checks = append(t.Checks, Check{Where: fmt.Sprintf("%d clients", n), Value: v, Bound: 0, Pass: v == 0, Detail: detail})
	}
	add(t)

	// 4. keys on disjoint contexts at 16 clients reaches half the ceiling.
	t = Target{Name: "disjoint: keys >= 1/2 insert ceiling at 16 clients", Goal: "commands/s of keys on the disjoint scenario at 16 clients divided by the insert-only ceiling's is at least 0.5"}
	if k, c := r.find(ScenarioDisjoint, keys, 16, 0), r.find(ScenarioDisjoint, strategyCeiling, 16, 0); k != nil && c != nil && c.PerSecond > 0 {
		ratio := k.PerSecond / c.PerSecond
		detail := fmt.Sprintf("keys %.0f/s, ceiling %.0f/s", k.PerSecond, c.PerSecond)
		if ct := r.find(ScenarioDisjoint, strategyCeilingTx, 16, 0); ct != nil {
			detail += fmt.Sprintf(", ceiling+tx %.0f/s", ct.PerSecond)
		}
		t.Checks = append(t.Checks, Check{Where: "16 clients", Value: ratio, Bound: 0.5, Pass: ratio >= 0.5, Detail: detail})
	}
	add(t)

	// 5. selective dispatch latency barely grows with history.
	t = Target{Name: "history: p50 at largest <= 1.5x smallest", Goal: "p50 latency of the selective command under keys with the largest history divided by that with the smallest is at most 1.5, at every client count"}
	if sizes := r.historySizes(); len(sizes) >= 2 {
		lo, hi := sizes[0], sizes[len(sizes)-1]
		for _, n := range r.clientCounts(ScenarioHistory) {
			a, b := r.find(ScenarioHistory, keys, n, lo), r.find(ScenarioHistory, keys, n, hi)
			if a == nil || b == nil || a.P50Ms == 0 {
				continue
			}
			ratio := b.P50Ms / a.P50Ms
			t.Checks = append(t.Checks, Check{Where: fmt.Sprintf("%d clients", n), Value: ratio, Bound: 1.5, Pass: ratio <= 1.5,
				Detail: fmt.Sprintf("p50 %.3fms at %s events, %.3fms at %s events", b.P50Ms, count(hi), a.P50Ms, count(lo))})
		}
	}
	add(t)

	// 6. the outbox costs at most 30% of dispatch throughput.
	t = Target{Name: "outbox: keys+outbox >= 0.7x keys", Goal: "commands/s with the outbox divided by commands/s without it (disjoint command, keys) is at least 0.7 at every client count"}
	t.Checks = r.throughputRatios(ScenarioOutbox, strategyOutbox, keys, 0, 0.7, func(o, k *Cell) string {
		return fmt.Sprintf("with outbox %.0f/s (%.2f rt/dispatch), without %.0f/s (%.2f rt/dispatch)", o.PerSecond, o.RoundTrips, k.PerSecond, k.RoundTrips)
	})
	add(t)

	// 6b. tracing every dispatch costs at most 10% of its throughput.
	t = Target{Name: "tracing: on >= 0.9x off", Goal: "commands/s of the disjoint command with the outbox, every dispatch traced and sampled (spans batched to a discarding exporter, trace context in the events' and jobs' metadata), divided by commands/s with tracing off, is at least 0.9 at every client count"}
	t.Checks = r.throughputRatios(ScenarioTracing, strategyTracing, strategyOutbox, 0, 0.9, func(on, off *Cell) string {
		return fmt.Sprintf("traced %.0f/s, untraced %.0f/s", on.PerSecond, off.PerSecond)
	})
	add(t)

	// 7. three running projections cost the writers at most 15%.
	t = Target{Name: "projections: keys+3 projections >= 0.85x keys", Goal: "commands/s of the disjoint command with three projections running divided by commands/s without them (keys) is at least 0.85 at every client count"}
	t.Checks = r.throughputRatios(ScenarioProjections, strategyProjections, keys, 0, 0.85, func(p, k *Cell) string {
		return fmt.Sprintf("with projections %.0f/s (p99 %.2fms), without %.0f/s (p99 %.2fms)", p.PerSecond, p.P99Ms, k.PerSecond, k.P99Ms)
	})
	add(t)

	// 8. commands through the local path at least twice as many as
	// through the regular activity, on the same Temporal server.
	t = Target{Name: "temporal: local path >= 2x regular activity at 16 clients", Goal: "commands/s of temporal-local+eager (the command in a local activity, the workflow started eagerly: no task through a task queue) divided by temporal's (a regular activity, today's path), on the same Temporal dev server in the same run, is at least 2 at 16 clients; temporal-local (the local activity alone) is shown beside it"}
	if l, a := r.find(ScenarioTemporal, strategyTemporalEager, 16, 0), r.find(ScenarioTemporal, strategyTemporal, 16, 0); l != nil && a != nil && a.PerSecond > 0 {
		ratio := l.PerSecond / a.PerSecond
		detail := fmt.Sprintf("local+eager %.0f/s (p50 %.1fms, p99 %.1fms), regular %.0f/s (p50 %.1fms, p99 %.1fms)", l.PerSecond, l.P50Ms, l.P99Ms, a.PerSecond, a.P50Ms, a.P99Ms)
		if lo := r.find(ScenarioTemporal, strategyTemporalLocal, 16, 0); lo != nil {
			detail += fmt.Sprintf("; local alone %.0f/s (%s, p50 %.1fms)", lo.PerSecond, ratioString(lo.PerSecond/a.PerSecond), lo.P50Ms)
		}
		t.Checks = append(t.Checks, Check{Where: "16 clients", Value: ratio, Bound: 2, Pass: ratio >= 2, Detail: detail})
	}
	add(t)
}

// throughputRatios checks, at every client count of scenario from
// minClients up where both cells ran, that a's commands/s divided by b's is
// at least bound.
func (r *Results) throughputRatios(scenario, a, b string, minClients int, bound float64, detail func(a, b *Cell) string) []Check {
	var checks []Check
	for _, n := range r.clientCounts(scenario) {
		x, y := r.find(scenario, a, n, 0), r.find(scenario, b, n, 0)
		if n < minClients || x == nil || y == nil || y.PerSecond == 0 {
			continue
		}
		ratio := x.PerSecond / y.PerSecond
		checks = append(checks, Check{Where: fmt.Sprintf("%d clients", n), Value: ratio, Bound: bound, Pass: ratio >= bound, Detail: detail(x, y)})
	}
	return checks
}

// count renders an event count the way the report names sizes: 1k, 100k, 1M.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

// ratioString renders a ratio with two significant decimals.
func ratioString(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return "n/a"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.2f", v), ".00") + "×"
}
