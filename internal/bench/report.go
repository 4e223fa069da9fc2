package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
)

// WriteJSON writes the results as indented JSON.
func WriteJSON(w io.Writer, res *Results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// The report's analysis is written by a person, from one run's figures.
// It lives between these markers; WriteMarkdown keeps it when a later run
// rewrites everything else, and warns when the figures around it come from
// another run than the one it was written for.
const (
	analysisBegin = "<!-- analysis:begin"
	analysisEnd   = "<!-- analysis:end -->"
)

var analysisRun = regexp.MustCompile(`^<!-- analysis:begin run=(\S+) -->`)

// Analysis extracts the analysis block from an earlier report, markers
// included; "" when it has none.
func Analysis(report string) string {
	i := strings.Index(report, analysisBegin)
	if i < 0 {
		return ""
	}
	j := strings.Index(report[i:], analysisEnd)
	if j < 0 {
		return ""
	}
	return report[i : i+j+len(analysisEnd)]
}

// WriteMarkdown writes the human report of res. analysis is the block
// Analysis returned from the previous report, kept as it is; when empty a
// placeholder block for this run is written.
func WriteMarkdown(w io.Writer, res *Results, analysis string) error {
	var b strings.Builder
	md := &mdWriter{b: &b, res: res}
	md.header()
	md.machine()
	md.targets()
	md.definitions()
	b.WriteString("![commands per second, latency and catch-up rates per scenario and strategy](benchmarks.svg)\n\n")
	md.scenario(ScenarioDisjoint, "Disjoint contexts", "Every command registers a fresh username (tickets.RegisterUserHandler): its context is a username no other command touches. Under `keys` no two dispatches share a lock key but `all` (held shared by every writer); `table` serializes every append; `serializable` (a baseline the store does not offer: it does not keep the guarantee in position order, docs/consistency.md) aborts dispatches whose index-page predicate locks overlap. The ceilings insert the same rows with the store's own INSERT and nothing else.")
	md.scenario(ScenarioHot, "One hot context", fmt.Sprintf("Every buyer races for the same concert (tickets.BuyTicketHandler), whose context is the concert's schedule and every ticket sold for it. After %d sales all buyers move on to the next concert, so the context the decider reads stays between 1 and %d events throughout the run; capacity is 10⁹, so nothing sells out.", res.Run.HotEpoch, res.Run.HotEpoch+1))
	md.scenario(ScenarioMix, "Mix", fmt.Sprintf("%d%% of the commands buy a ticket for the hot concert, the rest register fresh usernames.", res.Run.MixHotPercent))
	md.kinds()
	md.scenario(ScenarioStream, "Stream-revision dispatch", "Each command schedules a new concert (tickets.ScheduleConcertHandler, a Handler without Query): the context is the concert's own stream, a new one per command.")
	md.history()
	md.catchUp()
	md.tail()
	md.scenario(ScenarioOutbox, "Outbox", "The disjoint command under `keys`, without and with the outbox: with it, every dispatch also inserts one River reaction job row (the outbox's own SQL, internal/riversql, in the batch that inserts the events and commits) for a reactor subscribed to UserRegistered. No River worker runs, so the jobs wait; the cost measured is the insert's, in the transaction.",
		[2]string{strategyOutbox, keys})
	md.effects()
	md.projections()
	md.scenario(ScenarioTemporal, "Commands through Temporal", "The disjoint command (RegisterUser) sent four ways to the same store: `direct` calls `activities.Registry.Dispatch` in the client's goroutine (JSON payload and command id, as the activity does); `temporal` starts a workflow per command (one `activities.ExecuteCommand`, the library's default activity options) on a worker in the benchmark process and waits for its result; `temporal-local` does the same with the command sent through the local activity (`CommandOptions.Local`, default local activity options), which runs in the workflow's worker inside its workflow task instead of being scheduled through the server; `temporal-local+eager` also starts the workflow eagerly (`EnableEagerStart`: the benchmark's client is its worker's, so the server hands the first workflow task back with the start's response), so no task of the workflow goes through a task queue. The Temporal dev server (SQLite) runs on the same machine and shares its cores. Round trips are not counted on the Temporal paths (their dispatches run in the worker's context).",
		[2]string{strategyTemporal, strategyDirect}, [2]string{strategyTemporalLocal, strategyTemporal}, [2]string{strategyTemporalEager, strategyTemporal})
	md.evidence()
	md.analysis(analysis)
	_, err := io.WriteString(w, b.String())
	return err
}

type mdWriter struct {
	b   *strings.Builder
	res *Results
}

func (m *mdWriter) p(format string, args ...any) { fmt.Fprintf(m.b, format, args...) }

func (m *mdWriter) header() {
	r := m.res.Run
	m.p("# factos benchmarks\n\n")
	m.p("<!-- Generated by cmd/factos-bench (internal/bench) together with benchmarks.json and benchmarks.svg. A new run rewrites this file except the analysis block at the end. -->\n\n")
	m.p("Run `%s`, %s to %s UTC (%.0f minutes).\n\n", r.ID, r.Started.Format("2006-01-02 15:04"), r.Finished.Format("15:04"), r.Finished.Sub(r.Started).Minutes())
	if r.Command != "" {
		m.p("```sh\n%s\n```\n\n", r.Command)
	}
	m.p("Scenarios %s; strategies %s; clients %s; %.1fs measured per cell after %.1fs of warm-up; cells with %d or more clients repeated %d times (median shown, spread in the tables); `MaxAttempts` %d.\n\n",
		strings.Join(r.Scenarios, ", "), strings.Join(r.Strategies, ", "), joinInts(r.Clients), r.DurationSec, r.WarmupSec, r.HighClients, max(r.HighRepeats, r.Repeats), r.MaxAttempts)
	m.p("Reproduce with `make bench` (this configuration) or `make bench/quick` (a smoke run); `go run ./cmd/factos-bench -h` lists the flags.\n\n")
}

func (m *mdWriter) machine() {
	mc := m.res.Machine
	m.p("## Machine\n\n| | |\n| --- | --- |\n")
	m.p("| CPUs (nproc) | %d |\n", mc.CPUs)
	if mc.CPUModel != "" {
		m.p("| CPU | %s |\n", mc.CPUModel)
	}
	if mc.MemoryMB > 0 {
		m.p("| memory | %.1f GiB |\n", float64(mc.MemoryMB)/1024)
	}
	if mc.Kernel != "" {
		m.p("| kernel | %s |\n", mc.Kernel)
	}
	m.p("| Go | %s (%s) |\n", mc.Go, mc.OS)
	if mc.Commit != "" {
		m.p("| commit | %s |\n", mc.Commit)
	}
	m.p("| PostgreSQL | %s |\n", mc.Postgres)
	keys := slices.Sorted(maps.Keys(mc.Settings))
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s=%s", k, mc.Settings[k]))
	}
	m.p("| settings | %s |\n\n", strings.Join(s, ", "))
	m.p("The server and the benchmark client share the machine's cores. Every cell records how many cores the client, the server and everything else kept busy (columns *CPU c/s/o*); *o* well above zero means another process disturbed the cell.\n\n")
}

func (m *mdWriter) targets() {
	if len(m.res.Targets) == 0 {
		return
	}
	m.p("## Targets\n\nEach target is a ratio of two cells of this run, so the machine's speed cancels out, or a latency or count measured at an offered rate derived from this run.\n\n")
	m.p("| target | where | value | bound | | figures |\n| --- | --- | ---: | ---: | --- | --- |\n")
	for _, t := range m.res.Targets {
		if len(t.Checks) == 0 {
			m.p("| %s | — | | | not measured | |\n", t.Name)
			continue
		}
		for i, c := range t.Checks {
			name := ""
			if i == 0 {
				name = "**" + t.Name + "**"
			}
			verdict := "met"
			if !c.Pass {
				verdict = "**missed**"
			}
			value, bound := ratioString(c.Value), ratioString(c.Bound)
			switch {
			case strings.Contains(t.Name, "conflicts") || strings.Contains(c.Where, "missing"):
				value, bound = fmt.Sprintf("%.0f", c.Value), "0"
			case strings.Contains(c.Where, "(ms)") || strings.HasPrefix(t.Name, "tail"):
				value, bound = fmt.Sprintf("%.1fms", c.Value), fmt.Sprintf("%.0fms", c.Bound)
			}
			m.p("| %s | %s | %s | %s | %s | %s |\n", name, c.Where, value, bound, verdict, c.Detail)
		}
	}
	m.p("\n")
}

func (m *mdWriter) definitions() {
	d := m.res.Run.Definitions
	m.p("## What the columns count\n\n")
	for _, k := range []string{"commands_per_s", "latency", "retries", "conflicts", "round_trips", "statements", "cpu", "waits", "ceiling", "ceiling+tx", "hot"} {
		if v, ok := d[k]; ok {
			m.p("- **%s**: %s.\n", k, v)
		}
	}
	m.p("\n")
}

// scenario writes a scenario's comparison table and its cell details.
//
// extra pairs add ratio columns (first over second) to the default ones.
func (m *mdWriter) scenario(scenario, title, intro string, extra ...[2]string) {
	counts := m.res.clientCounts(scenario)
	if len(counts) == 0 {
		return
	}
	names := m.res.strategiesOf(scenario)
	m.p("## %s\n\n%s\n\n", title, intro)
	// Throughput side by side, with the ratios the targets use.
	m.p("| clients |")
	for _, n := range names {
		m.p(" %s /s |", label(n))
	}
	hasKT := slices.Contains(names, keys) && slices.Contains(names, table)
	hasKC := slices.Contains(names, keys) && slices.Contains(names, strategyCeiling)
	if hasKT {
		m.p(" keys/table |")
	}
	if slices.Contains(names, keys) && slices.Contains(names, ser) {
		m.p(" keys/serializable |")
	}
	if hasKC {
		m.p(" keys/ceiling |")
	}
	for _, pair := range extra {
		m.p(" %s/%s |", pair[0], pair[1])
	}
	m.p("\n| ---: |%s\n", strings.Repeat(" ---: |", len(names)+btoi(hasKT)+btoi(slices.Contains(names, keys) && slices.Contains(names, ser))+btoi(hasKC)+len(extra)))
	for _, n := range counts {
		m.p("| %d |", n)
		for _, s := range names {
			c := m.res.find(scenario, s, n, 0)
			if c == nil {
				m.p(" |")
				continue
			}
			if len(c.Runs) > 1 {
				m.p(" %.0f (%.0f–%.0f) |", c.PerSecond, c.PerSecondMin, c.PerSecondMax)
			} else {
				m.p(" %.0f |", c.PerSecond)
			}
		}
		ratio := func(a, b string) {
			x, y := m.res.find(scenario, a, n, 0), m.res.find(scenario, b, n, 0)
			if x == nil || y == nil || y.PerSecond == 0 {
				m.p(" |")
				return
			}
			m.p(" %s |", ratioString(x.PerSecond/y.PerSecond))
		}
		if hasKT {
			ratio(keys, table)
		}
		if slices.Contains(names, keys) && slices.Contains(names, ser) {
			ratio(keys, ser)
		}
		if hasKC {
			ratio(keys, strategyCeiling)
		}
		for _, pair := range extra {
			ratio(pair[0], pair[1])
		}
		m.p("\n")
	}
	m.p("\n")
	m.details(scenario, names, counts, 0)
}

// details writes one row per cell with every figure.
func (m *mdWriter) details(scenario string, names []string, counts []int, history int) {
	m.p("<details><summary>every figure of %s</summary>\n\n", scenario)
	m.p("Runs marked * were disturbed by other processes (more than %.2f cores busy besides client and server) and measured again; the summary leaves them out.\n\n", m.res.Run.MaxOther)
	m.p("| strategy | clients | cmd/s | runs (cmd/s) | p50 ms | p99 ms | retries/cmd | conflicts | rejected | errors | rt/dispatch | stmts/dispatch | CPU c/s/o | top waits (backends) |\n")
	m.p("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, n := range counts {
		for _, s := range names {
			c := m.res.find(scenario, s, n, history)
			if c == nil {
				continue
			}
			var runs []string
			for _, r := range c.Runs {
				mark := ""
				if r.Disturbed {
					mark = "*"
				}
				runs = append(runs, fmt.Sprintf("%.0f%s", r.PerSecond, mark))
			}
			mid := medianRun(c)
			m.p("| %s | %d | %.0f | %s | %.2f | %.2f | %.3f | %d | %d | %d | %.2f | %.2f | %.2f/%.2f/%.2f | %s |\n",
				s, n, c.PerSecond, strings.Join(runs, ", "), c.P50Ms, c.P99Ms, c.RetriesPerCommand, c.Conflicts, c.Rejected, c.Errors,
				c.RoundTrips, c.Statements, mid.CPU.Client, mid.CPU.Server, mid.CPU.Other, waitsString(mid.Waits, 3))
		}
	}
	m.p("\n</details>\n\n")
}

// medianRun is the kept run whose throughput is the cell's median (the
// lower middle one for an even count), for the figures that are not
// medians.
func medianRun(c *Cell) Measurement {
	runs := slices.Clone(c.kept())
	slices.SortStableFunc(runs, func(a, b Measurement) int {
		switch {
		case a.PerSecond < b.PerSecond:
			return -1
		case a.PerSecond > b.PerSecond:
			return 1
		}
		return 0
	})
	return runs[(len(runs)-1)/2]
}

func waitsString(ws []Wait, n int) string {
	var out []string
	for i, w := range ws {
		if i == n {
			break
		}
		state := ""
		if w.State == "idle in transaction" {
			state = " (idle in tx)"
		}
		out = append(out, fmt.Sprintf("%s%s %.1f", w.Event, state, w.Backends))
	}
	return strings.Join(out, "; ")
}

// kinds splits the mix scenario by command kind.
func (m *mdWriter) kinds() {
	counts := m.res.clientCounts(ScenarioMix)
	if len(counts) == 0 {
		return
	}
	m.p("Mix by command kind (median run):\n\n| strategy | clients | disjoint /s | disjoint p50 / p99 ms | hot /s | hot p50 / p99 ms |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, n := range counts {
		for _, s := range m.res.strategiesOf(ScenarioMix) {
			c := m.res.find(ScenarioMix, s, n, 0)
			if c == nil {
				continue
			}
			k := medianRun(c).Kinds
			d, h := k["disjoint"], k["hot"]
			m.p("| %s | %d | %.0f | %.2f / %.2f | %.0f | %.2f / %.2f |\n", s, n, d.PerSecond, d.Latency.P50, d.Latency.P99, h.PerSecond, h.Latency.P50, h.Latency.P99)
		}
	}
	m.p("\n")
}

func (m *mdWriter) history() {
	sizes := m.res.historySizes()
	if len(sizes) == 0 {
		return
	}
	names := m.res.strategiesOf(ScenarioHistory)
	counts := m.res.clientCounts(ScenarioHistory)
	m.p("## History\n\nThe selective command (RegisterUser of a fresh username: one tag probe for the context, one stream head, one event and two tag rows written) with a history already stored. The history is loaded with set-based SQL (a quarter UserRegistered, three quarters TicketSold over 1000 concerts, each in a stream of its own), vacuumed and analyzed, and every cell runs on a fresh copy of it, so no cell sees what an earlier one added.\n\n")
	m.p("p50 / p99 latency in ms:\n\n| strategy | clients |")
	for _, s := range sizes {
		m.p(" %s events |", count(s))
	}
	m.p(" p50 %s/%s |\n| --- | ---: |%s ---: |\n", count(sizes[len(sizes)-1]), count(sizes[0]), strings.Repeat(" ---: |", len(sizes)))
	for _, n := range counts {
		for _, s := range names {
			m.p("| %s | %d |", s, n)
			for _, size := range sizes {
				if c := m.res.find(ScenarioHistory, s, n, size); c != nil {
					m.p(" %.3f / %.3f |", c.P50Ms, c.P99Ms)
				} else {
					m.p(" |")
				}
			}
			lo, hi := m.res.find(ScenarioHistory, s, n, sizes[0]), m.res.find(ScenarioHistory, s, n, sizes[len(sizes)-1])
			if lo != nil && hi != nil && lo.P50Ms > 0 {
				m.p(" %s |\n", ratioString(hi.P50Ms/lo.P50Ms))
			} else {
				m.p(" |\n")
			}
		}
	}
	m.p("\nCommands/s:\n\n| strategy | clients |")
	for _, s := range sizes {
		m.p(" %s |", count(s))
	}
	m.p("\n| --- | ---: |%s\n", strings.Repeat(" ---: |", len(sizes)))
	for _, n := range counts {
		for _, s := range names {
			m.p("| %s | %d |", s, n)
			for _, size := range sizes {
				if c := m.res.find(ScenarioHistory, s, n, size); c != nil {
					m.p(" %.0f |", c.PerSecond)
				} else {
					m.p(" |")
				}
			}
			m.p("\n")
		}
	}
	m.p("\n")
	for _, size := range sizes {
		m.details(ScenarioHistory, names, counts, size)
	}
}

func (m *mdWriter) catchUp() {
	if len(m.res.CatchUp) == 0 {
		return
	}
	m.p("## Catch-up reads\n\n`Store.ReadAfter` from position 0, page after page (%d records a page at most), until the reader reaches the head the log had when it started: %d events stored, a quarter of them UserRegistered. *Filtered* reads `%s`. With writers, %d clients dispatch disjoint RegisterUser commands (which match both reads) meanwhile. Records/s counts returned events; positions/s the log covered per second, the rate a projection catches up at.\n\n",
		eventstore.DefaultReadLimit, m.res.Run.CatchUpEvents, catchUpFilter.String(), m.res.Run.CatchUpWriters)
	m.p("With writers, the writers run twice in windows of the same length back to back: alone, then beside a reader that reads the log from position 0 to its head pass after pass for the whole window (the pass open when the window closes is cut). *with / alone* is the writers' commands/s beside the reader divided by theirs alone.\n\n")
	m.p("| strategy | filter | writers | passes | records/s | positions/s | page p50 / p99 ms | writers alone cmd/s | writers with reader cmd/s | with / alone | writer p99 alone / with ms | errors |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range m.res.CatchUp {
		filter := "none"
		if c.Filter != "none" {
			filter = "filtered"
		}
		alone, with, ratio, wl := "—", "—", "—", "—"
		if c.Writers > 0 {
			alone = fmt.Sprintf("%.0f", c.WriterAlonePerS)
			with = fmt.Sprintf("%.0f", c.WriterPerS)
			if c.WriterAlonePerS > 0 {
				ratio = ratioString(c.WriterPerS / c.WriterAlonePerS)
			}
			wl = fmt.Sprintf("%.2f / %.2f", c.WriterAloneLatency.P99, c.WriterLatency.P99)
		}
		m.p("| %s | %s | %d | %d | %.0f | %.0f | %.2f / %.2f | %s | %s | %s | %s | %d |\n", label(c.Strategy), filter, c.Writers, c.Passes, c.RecordsPerS, c.PositionsPer, c.PageLatency.P50, c.PageLatency.P99, alone, with, ratio, wl, c.Errors)
	}
	m.p("\n")
}

// tail writes the tail scenario's table.
func (m *mdWriter) tail() {
	if len(m.res.Tail) == 0 {
		return
	}
	m.p("## Tailing reader\n\nRegisterUser commands offered at a fixed rate under `keys`, each on its own goroutine, while one reader that has caught up follows the log: `Store.ReadAfter` from the last page's `Next`, again at once after a page with records, after %gms after an empty one. Commit to seen runs from each record's `recorded_at` (its insert, just before its commit) to the return of the read that returned it. Every record must be seen.\n\n", m.res.Tail[0].PollMs)
	m.p("| offered /s | achieved /s | commands | seen | reads | dispatch p50 / p99 ms | commit to seen p50 / p90 / p99 / max ms | errors |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range m.res.Tail {
		m.p("| %d | %.0f | %d | %d | %d | %.2f / %.2f | %.1f / %.1f / %.1f / %.1f | %d |\n", t.Rate, t.PerSecond, t.Commands, t.Seen, t.Reads, t.Dispatch.P50, t.Dispatch.P99, t.Lag.P50, t.Lag.P90, t.Lag.P99, t.Lag.Max, t.Errors)
	}
	m.p("\n")
	for _, t := range m.res.Tail {
		if t.Errors > 0 {
			m.p("At %d/s, %d errors; the first: %s\n\n", t.Rate, t.Errors, t.FirstError)
		}
	}
}

// label is a strategy's name in the report: the SERIALIZABLE baseline is
// marked as one.
func label(strategy string) string {
	if strategy == ser {
		return ser + " (baseline)"
	}
	return strategy
}

// evidence writes what the server was doing: waits and statements of the
// 16-client cells (or the largest below), and the history plans.
// effects writes the effects scenario's table.
func (m *mdWriter) effects() {
	if len(m.res.Effects) == 0 {
		return
	}
	m.p("## From commit to effect\n\n")
	m.p("RegisterUser commands offered at a fixed rate, each on its own goroutine, with the outbox installed and a River client in the benchmark process running the reactions and the effects. ")
	if b := m.res.EffectBase; b != nil {
		m.p("The offered rates are fractions of %s's throughput in this run (%.0f/s), from one half up by tenths until the pipeline no longer keeps up (achieved below 0.98 of offered, p99 to done above 1s, or an effect missing or doubled: *sustained* no), for each River configuration; when one half is not sustained, the worker's default configuration steps down by tenths (unordered) until a rate is, so that the run states the highest rate it sustains. ", b.Cell, b.PerSecond)
	}
	m.p("The first configuration is the worker's default (`worker run`: %d reaction and %d effect workers, `RIVER_FETCH_COOLDOWN` 10ms, the outbox notifying River's producers at most once per cooldown); each other one changes one setting. The reactor plans one effect per user; the effect handler inserts a row keyed by the effect's idempotency key. Latencies run from the event's `recorded_at` (its insert, just before commit) to the reactor's run, to the effect handler's start, and to the end of the handler's own committed insert (*to done*: commit to effect). Every command must get exactly one effect.\n\n", factos.DefaultReactionWorkers, factos.DefaultEffectWorkers)
	m.p("| River | offered /s | fraction | achieved /s | effects /s | commands | effects | duplicates | missing | dispatch p50 / p99 ms | to reaction p50 / p99 ms | to effect p50 / p99 ms | to done p50 / p99 / max ms | sustained |\n")
	m.p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, e := range m.res.Effects {
		name := e.Variant
		if e.OrderingKeys > 0 {
			name += fmt.Sprintf(", **ordered (%d keys)**", e.OrderingKeys)
		}
		frac := "—"
		if e.Fraction > 0 {
			frac = fmt.Sprintf("%.2f", e.Fraction)
		}
		sus := "no"
		if e.Sustained() {
			sus = "yes"
		}
		m.p("| %s | %d | %s | %.0f | %.0f | %d | %d | %d | %d | %.2f / %.2f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f / %.1f | %s |\n",
			name, e.Rate, frac, e.PerSecond, e.EffectsPerSecond, e.Commands, e.Effects, e.Duplicates, e.Missing, e.Dispatch.P50, e.Dispatch.P99,
			e.ToReaction.P50, e.ToReaction.P99, e.ToEffect.P50, e.ToEffect.P99, e.ToDone.P50, e.ToDone.P99, e.ToDone.Max, sus)
	}
	m.p("\n")
	for _, e := range m.res.Effects {
		if e.Errors > 0 {
			m.p("At %d/s, %d dispatches failed; the first: %s\n\n", e.Rate, e.Errors, e.FirstError)
		}
	}
	m.effectOrdering()
}

// effectOrdering sets the ordered effect runs beside the unordered ones.
func (m *mdWriter) effectOrdering() {
	if len(m.res.EffectOrdering) == 0 {
		return
	}
	m.p("### Ordered against unordered effects\n\n")
	m.p("With the worker's defaults, every offered rate also runs with ordered effects, right after its unordered run, on the same River client and database: each effect carries the ordering key `user-group:<n>`, *n* its command's number modulo the key count, so each key's effects run one at a time in the order of their events' positions, released by the registry's sequencer (its defaults; it runs beside the client in every configuration, as in `worker run`). Before its first rate, each configuration runs an unmeasured warm-up at 100/s for the warm-up time (unordered, then ordered where it runs ordered), so that neither run of the first rate pays for a cold start. Ordered runs stop at their first stepped rate not sustained. *Effects/s* counts effects ended per second between the ends of the 10th and the 90th percentile effect (the offered rate when the pipeline keeps up, its throughput when it falls behind, whatever its latency); the ratios are ordered over unordered. Each effect handler records, for the first run of each effect key, the position it ran for: an *order violation* is one that ran after an effect of a higher position of its key, or while another effect of its key ran; *checks* counts the effects compared with an earlier one of their key.\n\n")
	m.p("| offered /s | fraction | keys | achieved cmd/s unordered / ordered | effects/s unordered / ordered | effects/s ordered/unordered | to done p50 ms unordered / ordered | p50 ordered/unordered | to done p99 ms unordered / ordered | p99 ordered/unordered | missing unordered / ordered | duplicates unordered / ordered | order violations (checks) | sustained unordered / ordered |\n")
	m.p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, p := range m.res.EffectOrdering {
		u, o := p.Unordered, p.Ordered
		frac := "—"
		if p.Fraction > 0 {
			frac = fmt.Sprintf("%.2f", p.Fraction)
		}
		m.p("| %d | %s | %d | %.0f / %.0f | %.0f / %.0f | %s | %.1f / %.1f | %s | %.1f / %.1f | %s | %d / %d | %d / %d | %d (%d) | %s / %s |\n",
			p.Rate, frac, p.OrderingKeys, u.CommandsPerSecond, o.CommandsPerSecond, u.EffectsPerSecond, o.EffectsPerSecond, ratioString(p.EffectsPerSecondRatio),
			u.ToDone.P50, o.ToDone.P50, ratioString(p.ToDoneP50Ratio), u.ToDone.P99, o.ToDone.P99, ratioString(p.ToDoneP99Ratio),
			u.Missing, o.Missing, u.Duplicates, o.Duplicates, o.OrderViolations, o.OrderChecks, yes(u.Sustained), yes(o.Sustained))
	}
	m.p("\n")
}

// projections writes the three projection scenarios.
func (m *mdWriter) projections() {
	counts := m.res.clientCounts(ScenarioProjections)
	if len(counts) == 0 && len(m.res.ProjectionCatchUp) == 0 && len(m.res.ProjectionLag) == 0 {
		return
	}
	m.p("## Projections\n\nThe projections package (docs/projections.md): each batch of events is applied and its checkpoint moved in one transaction, by the one runner holding the projection's lease.\n\n")
	if len(m.res.ProjectionCatchUp) > 0 {
		m.p("**Catch-up.** The ticket domain's `concert_sales` (per-concert seats and buyers, folded from every TicketSold: %s of the %d stored events, over 1000 concerts) starts from position 0 on a fresh copy of the log and runs until its checkpoint reaches the head, with each batch size. Events/s counts events applied; positions/s the log passed.\n\n", "three quarters", m.res.Run.CatchUpEvents)
		m.p("| batch size | events | batches | seconds | events/s | positions/s | errors |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, c := range m.res.ProjectionCatchUp {
			m.p("| %d | %d | %d | %.2f | %.0f | %.0f | %d |\n", c.BatchSize, c.Events, c.Batches, c.Seconds, c.EventsPerS, c.PositionsPerS, c.Errors)
		}
		m.p("\n")
	}
	if len(m.res.ProjectionLag) > 0 {
		m.p("**Live lag.** RegisterUser commands offered at a fixed rate, each on its own goroutine, while the `users` projection runs in the same process with the worker's defaults (poll every %.0fms); each command then waits for its event in the view with `WaitFor`. Lag runs from the dispatch's return (its commit) to `WaitFor`'s.\n\n", m.res.ProjectionLag[0].PollMs)
		m.p("| offered /s | achieved /s | commands | dispatch p50 / p99 ms | commit to view p50 / p99 / max ms | errors |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, l := range m.res.ProjectionLag {
			m.p("| %d | %.0f | %d | %.2f / %.2f | %.1f / %.1f / %.1f | %d |\n", l.Rate, l.PerSecond, l.Commands, l.Dispatch.P50, l.Dispatch.P99, l.Lag.P50, l.Lag.P99, l.Lag.Max, l.Errors)
		}
		m.p("\n")
		for _, l := range m.res.ProjectionLag {
			if l.Errors > 0 {
				m.p("At %d/s, %d commands failed; the first: %s\n\n", l.Rate, l.Errors, l.FirstError)
			}
		}
	}
	m.scenario(ScenarioProjections, "Dispatch with projections running", "The disjoint command under `keys`, without projections and with three running in the benchmark process on the same database: `users` and `type_counts` match every command's event (the latter reads the whole log, so its catch-up reads take the `all` barrier key every writer holds shared), `concert_sales` matches none. Each runner reads, applies and checkpoints as the commands commit.",
		[2]string{strategyProjections, keys})
}

func (m *mdWriter) evidence() {
	m.p("## Evidence\n\n")
	for _, sc := range []string{ScenarioDisjoint, ScenarioHot} {
		counts := m.res.clientCounts(sc)
		if len(counts) == 0 {
			continue
		}
		n := counts[len(counts)-1]
		for _, c := range counts {
			if c <= 16 {
				n = c
			}
		}
		m.p("### %s, %d clients: where the backends were\n\n", sc, n)
		m.p("| strategy | waits sampled from pg_stat_activity (average backends) |\n| --- | --- |\n")
		for _, s := range m.res.strategiesOf(sc) {
			if c := m.res.find(sc, s, n, 0); c != nil {
				m.p("| %s | %s |\n", s, waitsString(medianRun(c).Waits, 8))
			}
		}
		m.p("\n")
		first := true
		for _, s := range m.res.strategiesOf(sc) {
			c := m.res.find(sc, s, n, 0)
			if c == nil {
				continue
			}
			sts := medianRun(c).TopStatements
			if len(sts) == 0 {
				continue
			}
			if first {
				m.p("Top statements by server time (pg_stat_statements, median run):\n\n| strategy | calls | mean ms | total ms | statement |\n| --- | ---: | ---: | ---: | --- |\n")
				first = false
			}
			for i, st := range sts {
				if i == 5 {
					break
				}
				m.p("| %s | %d | %.3f | %.0f | `%s` |\n", s, st.Calls, st.MeanMs, st.TotalMs, strings.ReplaceAll(oneLine(st.Query, 110), "|", "\\|"))
			}
		}
		if !first {
			m.p("\n")
		}
	}
	if len(m.res.Plans) > 0 {
		m.p("### Plans of a history dispatch\n\nEXPLAIN (ANALYZE, BUFFERS) of every statement one `keys` dispatch of the history scenario sent, with its own arguments, at each history size (execution time in ms):\n\n")
		sizes := m.res.historySizes()
		m.p("| statement |")
		for _, s := range sizes {
			m.p(" %s |", count(s))
		}
		m.p("\n| --- |%s\n", strings.Repeat(" ---: |", len(sizes)))
		var sqls []string
		for _, p := range m.res.Plans {
			if !slices.Contains(sqls, p.SQL) {
				sqls = append(sqls, p.SQL)
			}
		}
		for _, sql := range sqls {
			m.p("| `%s` |", strings.ReplaceAll(oneLine(sql, 90), "|", "\\|"))
			for _, s := range sizes {
				for _, p := range m.res.Plans {
					if p.SQL == sql && p.Events == int64(s) {
						m.p(" %.3f |", p.ExecutionMs)
					}
				}
			}
			m.p("\n")
		}
		m.p("\n")
		if len(sizes) > 0 {
			largest := int64(sizes[len(sizes)-1])
			m.p("<details><summary>plans at %s events</summary>\n\n", count(int(largest)))
			for _, p := range m.res.Plans {
				if p.Events == largest {
					m.p("```\n%s\n\n%s\n```\n\n", oneLine(p.SQL, 400), p.Text)
				}
			}
			m.p("</details>\n\n")
		}
	}
}

func (m *mdWriter) analysis(block string) {
	m.p("## Analysis\n\n")
	if block == "" {
		block = fmt.Sprintf("%s run=%s -->\n_No analysis written for this run yet._\n%s", analysisBegin, m.res.Run.ID, analysisEnd)
	} else if mm := analysisRun.FindStringSubmatch(block); mm != nil && mm[1] != m.res.Run.ID {
		m.p("> **Note:** the analysis below was written for run `%s`; the figures above are from run `%s`. Check it against them.\n\n", mm[1], m.res.Run.ID)
	}
	m.p("%s\n", block)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
