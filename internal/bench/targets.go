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

	// 1. keys at least three times table on disjoint contexts, 16 clients
	// up (issue 13).
	t := Target{Name: "disjoint: keys >= 3x table", Goal: "commands/s of keys divided by table's on the disjoint scenario is at least 3 at every client count from 16 up"}
	t.Checks = r.throughputRatios(ScenarioDisjoint, keys, table, 16, 3, func(k, tb *Cell) string {
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

	// 4. keys on disjoint contexts at 16 clients reaches 0.55 of the
	// ceiling (issue 13).
	t = Target{Name: "disjoint: keys >= 0.55x insert ceiling at 16 clients", Goal: "commands/s of keys on the disjoint scenario at 16 clients divided by the insert-only ceiling's is at least 0.55"}
	if k, c := r.find(ScenarioDisjoint, keys, 16, 0), r.find(ScenarioDisjoint, strategyCeiling, 16, 0); k != nil && c != nil && c.PerSecond > 0 {
		ratio := k.PerSecond / c.PerSecond
		detail := fmt.Sprintf("keys %.0f/s, ceiling %.0f/s", k.PerSecond, c.PerSecond)
		if ct := r.find(ScenarioDisjoint, strategyCeilingTx, 16, 0); ct != nil {
			detail += fmt.Sprintf(", ceiling+tx %.0f/s", ct.PerSecond)
		}
		t.Checks = append(t.Checks, Check{Where: "16 clients", Value: ratio, Bound: 0.55, Pass: ratio >= 0.55, Detail: detail})
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

	// 6. the outbox costs at most 15% of dispatch throughput (issue 13).
	t = Target{Name: "outbox: keys+outbox >= 0.85x keys", Goal: "commands/s with the outbox divided by commands/s without it (disjoint command, keys) is at least 0.85 at every client count"}
	t.Checks = r.throughputRatios(ScenarioOutbox, strategyOutbox, keys, 0, 0.85, func(o, k *Cell) string {
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

	// 9. a catching-up reader does not stall the writers of its scope
	// (issue 12).
	t = Target{Name: "catch-up: writers keep >= 0.9x beside a reader", Goal: "under keys, the catch-up scenario's writers (disjoint commands, in the reader's scope) reach at least 0.9 of the commands/s they reach with no reader, in windows of the same length back to back, with the unfiltered and with the filtered reader"}
	for _, cu := range r.CatchUp {
		if cu.Strategy != keys || cu.Writers == 0 || cu.WriterAlonePerS <= 0 {
			continue
		}
		ratio := cu.WriterPerS / cu.WriterAlonePerS
		t.Checks = append(t.Checks, Check{Where: fmt.Sprintf("filter %s, %d writers", cu.Filter, cu.Writers), Value: ratio, Bound: 0.9, Pass: ratio >= 0.9,
			Detail: fmt.Sprintf("with reader %.0f/s (p99 %.2fms), alone %.0f/s (p99 %.2fms); reader %.0f records/s, %d passes", cu.WriterPerS, cu.WriterLatency.P99, cu.WriterAlonePerS, cu.WriterAloneLatency.P99, cu.RecordsPerS, cu.Passes)})
	}
	add(t)

	// 10. a tailing reader sees a commit within 50 ms (issue 12).
	t = Target{Name: "tail: commit seen within 50ms at p99", Goal: "a caught-up reader polling Store.ReadAfter (every 10ms when idle) returns each record at most 50ms after its recorded_at (its insert, before its commit) at p99, at every offered rate of the tail scenario, and returns every record"}
	for _, tr := range r.Tail {
		pass := tr.Lag.P99 <= 50 && tr.Seen == tr.Commands && tr.Errors == 0 && tr.Commands > 0
		t.Checks = append(t.Checks, Check{Where: fmt.Sprintf("%d/s offered", tr.Rate), Value: tr.Lag.P99, Bound: 50, Pass: pass,
			Detail: fmt.Sprintf("achieved %.0f/s; seen %d of %d; p50 %.1fms, max %.1fms", tr.PerSecond, tr.Seen, tr.Commands, tr.Lag.P50, tr.Lag.Max)})
	}
	add(t)

	// 11. commit to effect at half keys+outbox's throughput (issue 13).
	t = Target{Name: "effects: at 1/2 keys+outbox throughput, p99 commit to effect <= 250ms", Goal: "commands offered at half of keys+outbox's 16-client throughput in this run, with the worker's River defaults: achieved at least 0.98 of offered, p99 from the event's insert to the end of its effect at most 250ms, no effect missing, none run twice"}
	for _, e := range r.Effects {
		if e.Fraction != effectJudged || e.Variant != riverVariants[0].name || e.OrderingKeys > 0 {
			continue
		}
		detail := fmt.Sprintf("offered %d/s, achieved %.0f/s; effects %d of %d, %d duplicates, %d missing, %d errors", e.Rate, e.PerSecond, e.Effects, e.Commands, e.Duplicates, e.Missing, e.Errors)
		ach := e.PerSecond / float64(e.Rate)
		t.Checks = append(t.Checks,
			Check{Where: "achieved / offered", Value: ach, Bound: 0.98, Pass: ach >= 0.98, Detail: detail},
			Check{Where: "p99 commit to effect (ms)", Value: e.ToDone.P99, Bound: 250, Pass: e.ToDone.P99 <= 250,
				Detail: fmt.Sprintf("to reaction p99 %.1fms, to effect start p99 %.1fms, to effect end p50 %.1fms", e.ToReaction.P99, e.ToEffect.P99, e.ToDone.P50)},
			Check{Where: "missing + duplicates", Value: float64(e.Missing + e.Duplicates), Bound: 0, Pass: e.Missing == 0 && e.Duplicates == 0 && e.Commands > 0, Detail: detail})
	}
	add(t)

	// 12. the highest rate the pipeline sustains (issue 13, an aim).
	t = Target{Name: "effects: highest sustained rate >= 0.5x keys+outbox", Goal: "the highest offered rate, as a fraction of keys+outbox's 16-client throughput in this run, at which the pipeline with the worker's River defaults achieves at least 0.98 of offered with p99 commit to effect within 1s and every effect exactly once, is at least 0.5 (rates stepped up by tenths from 0.5 until one is not sustained; when 0.5 is not sustained, down by tenths until one is)"}
	if r.EffectBase != nil {
		best, tried := 0.0, 0
		var last EffectRun
		for _, e := range r.Effects {
			if e.Fraction == 0 || e.Variant != riverVariants[0].name || e.OrderingKeys > 0 {
				continue
			}
			tried++
			last = e
			if e.Sustained() {
				best = max(best, e.Fraction)
			}
		}
		if tried > 0 {
			detail := fmt.Sprintf("%s %.0f/s; %d rates tried, last offered %d/s achieved %.0f/s p99 %.0fms", r.EffectBase.Cell, r.EffectBase.PerSecond, tried, last.Rate, last.PerSecond, last.ToDone.P99)
			t.Checks = append(t.Checks, Check{Where: "highest sustained", Value: best, Bound: 0.5, Pass: best >= 0.5, Detail: detail})
		}
	}
	add(t)

	// 13. ordered effects keep the pipeline's invariant and their order
	// (issue 14).
	t = Target{Name: "effects: ordered, each once and in order", Goal: "at every offered rate of the ordered effect runs (effects spread over the run's ordering keys, the worker's River defaults): every command's effect ran, none twice, and no key's effect ran after one of a higher position of its key or beside another of its key"}
	for _, p := range r.EffectOrdering {
		o := p.Ordered
		v := float64(o.Missing + o.Duplicates + o.OrderViolations)
		t.Checks = append(t.Checks, Check{Where: fmt.Sprintf("%d/s offered: missing + duplicates + order violations", p.Rate), Value: v, Bound: 0,
			Pass: v == 0 && o.Commands > 0,
			Detail: fmt.Sprintf("%d keys; effects %d of %d, %d missing, %d duplicates, %d order violations in %d checks; effects/s %.0f (%s unordered's), p99 to done %.1fms (%s unordered's)",
				p.OrderingKeys, o.Effects, o.Commands, o.Missing, o.Duplicates, o.OrderViolations, o.OrderChecks, o.EffectsPerSecond, ratioString(p.EffectsPerSecondRatio), o.ToDone.P99, ratioString(p.ToDoneP99Ratio))})
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
