package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/factos-go/factos/internal/bench"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testtemporal"
)

func TestMain(m *testing.M) { testdb.Main(m, testtemporal.Setup) }

// testDatabases are testdb's migrated databases, cloned through the test
// server's admin connection.
type testDatabases struct{}

func (testDatabases) Create(ctx context.Context) (string, func() error, error) {
	return testdb.Create(ctx)
}

func (testDatabases) Clone(ctx context.Context, url string) (string, func() error, error) {
	return bench.CloneDatabase(ctx, testdb.AdminURL(), url)
}

// TestQuickRun runs every scenario in quick mode so the benchmark cannot
// rot: every cell must have measured commands and sane figures, and the
// reports must render. It asserts nothing about speed. Quick windows are
// short but last until they counted Config.MinCommands commands, so a
// loaded machine makes the test slower, not flaky.
func TestQuickRun(t *testing.T) {
	cfg := bench.QuickConfig()
	cfg.Databases = testDatabases{}
	cfg.TemporalAddress = testtemporal.Address()
	cfg.TemporalNamespace = testtemporal.Namespace()
	cfg.Log = testLog{t}
	res, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	strategies := []string{"keys", "table", "serializable"}
	want := map[string][]string{
		bench.ScenarioDisjoint: append(slices.Clone(strategies), "ceiling", "ceiling+tx"),
		bench.ScenarioHot:      strategies,
		bench.ScenarioMix:      strategies,
		bench.ScenarioStream:   strategies,
		bench.ScenarioOutbox:   {"keys", "keys+outbox"},
		bench.ScenarioTracing:  {"keys+outbox", "keys+outbox+tracing"},
		bench.ScenarioTemporal: {"direct", "temporal", "temporal-local", "temporal-local+eager"},

		bench.ScenarioProjections: {"keys", "keys+3 projections"},
	}
	type cellKey struct {
		scenario, strategy string
		clients, history   int
	}
	got := map[cellKey]bench.Cell{}
	for _, c := range res.Cells {
		got[cellKey{c.Scenario, c.Strategy, c.Clients, c.History}] = c
	}
	for _, n := range cfg.Clients {
		for scenario, names := range want {
			for _, s := range names {
				if _, ok := got[cellKey{scenario, s, n, 0}]; !ok {
					t.Errorf("no cell %s/%s/%d clients", scenario, s, n)
				}
			}
		}
		for _, size := range cfg.HistorySizes {
			for _, s := range strategies {
				if _, ok := got[cellKey{bench.ScenarioHistory, s, n, size}]; !ok {
					t.Errorf("no history cell %s/%d clients/%d events", s, n, size)
				}
			}
		}
	}

	for _, c := range res.Cells {
		where := c.Scenario + "/" + c.Strategy
		if len(c.Runs) == 0 {
			t.Errorf("%s/%d: no runs", where, c.Clients)
		}
		for _, m := range c.Runs {
			checkMeasurement(t, where, c.Clients, m)
		}
		if c.PerSecond <= 0 || c.PerSecondMin > c.PerSecond || c.PerSecond > c.PerSecondMax {
			t.Errorf("%s/%d: summary %v not within its runs [%v, %v]", where, c.Clients, c.PerSecond, c.PerSecondMin, c.PerSecondMax)
		}
	}

	if n := len(res.CatchUp); n != 2*2*len(strategies) {
		t.Errorf("%d catch-up results, want %d (2 filters x 2 writer counts x %d strategies)", n, 2*2*len(strategies), len(strategies))
	}
	for _, cu := range res.CatchUp {
		if cu.Records <= 0 || cu.Pages <= 0 || cu.Seconds <= 0 || cu.Errors != 0 || cu.FirstError != "" {
			t.Errorf("catch-up %s/%s/%d writers: %+v", cu.Strategy, cu.Filter, cu.Writers, cu)
		}
		if cu.Writers > 0 && (cu.WriterPerS <= 0 || cu.WriterAlonePerS <= 0) {
			t.Errorf("catch-up %s/%s: writers ran no commands: %+v", cu.Strategy, cu.Filter, cu)
		}
	}
	if len(res.Tail) != len(cfg.TailRates) {
		t.Errorf("%d tail results, want one per rate %v", len(res.Tail), cfg.TailRates)
	}
	for _, tr := range res.Tail {
		if tr.Commands <= 0 || tr.Seen != tr.Commands || tr.Errors != 0 || tr.Lag.P50 <= 0 || tr.Lag.P50 > tr.Lag.P99 {
			t.Errorf("tail at %d/s: %+v", tr.Rate, tr)
		}
	}
	// Every River variant runs the judged rate, half of keys+outbox's
	// throughput; faster steps follow while the pipeline keeps up.
	if res.EffectBase == nil || res.EffectBase.PerSecond <= 0 {
		t.Errorf("effects: no keys+outbox throughput to offer fractions of: %+v", res.EffectBase)
	}
	judged := map[string]int{}
	for _, e := range res.Effects {
		if e.Fraction == 0.5 {
			v := e.Variant
			if e.OrderingKeys > 0 {
				v += ", ordered"
			}
			judged[v]++
		}
	}
	if len(judged) < 3 {
		t.Errorf("effects: judged rate run by %d River variants (%v), want every variant", len(judged), judged)
	}
	for v, n := range judged {
		if n != 1 {
			t.Errorf("effects: variant %q ran the judged rate %d times", v, n)
		}
	}
	for _, e := range res.Effects {
		// Exactly one effect per committed command: the outbox, the
		// reaction and the effect job lost nothing and doubled nothing.
		if e.Commands <= 0 || e.Effects != e.Commands || e.Duplicates != 0 || e.Missing != 0 || e.Errors != 0 {
			t.Errorf("effects at %d/s: %+v", e.Rate, e)
		}
		if l := e.ToDone; l.P50 <= 0 || l.P50 > l.P99 || e.ToEffect.P50 > l.P50 || e.ToReaction.P50 > e.ToEffect.P50 {
			t.Errorf("effects at %d/s: latencies not ordered: reaction %+v effect %+v done %+v", e.Rate, e.ToReaction, e.ToEffect, l)
		}
		if e.OrderViolations != 0 || e.EffectsPerSecond <= 0 {
			t.Errorf("effects at %d/s (%d ordering keys): %d order violations, %.0f effects/s", e.Rate, e.OrderingKeys, e.OrderViolations, e.EffectsPerSecond)
		}
	}
	// The worker's defaults run every rate with ordered effects too, set
	// beside the unordered run: each key's effects ran one at a time, in
	// position order, exactly once.
	if len(res.EffectOrdering) == 0 || res.EffectOrdering[0].Fraction != 0.5 {
		t.Errorf("effects: no ordered run at the judged rate: %+v", res.EffectOrdering)
	}
	for _, p := range res.EffectOrdering {
		o := p.Ordered
		// Each key gets about commands/keys effects: most are compared
		// with an earlier one of their key.
		if p.OrderingKeys != cfg.EffectOrderingKeys || o.Commands <= 0 || o.Effects != o.Commands || o.Missing != 0 || o.Duplicates != 0 ||
			o.OrderViolations != 0 || o.OrderChecks < o.Effects-int64(p.OrderingKeys) || p.EffectsPerSecondRatio <= 0 || p.ToDoneP99Ratio <= 0 {
			t.Errorf("ordered effects at %d/s: %+v", p.Rate, p)
		}
	}
	if len(res.ProjectionCatchUp) != len(cfg.ProjectionBatchSizes) {
		t.Errorf("%d projection catch-up results, want one per batch size %v", len(res.ProjectionCatchUp), cfg.ProjectionBatchSizes)
	}
	for _, c := range res.ProjectionCatchUp {
		// Three quarters of the loaded log are sales, all applied.
		if c.Errors != 0 || c.Events != int64(cfg.CatchUpEvents*3/4) || c.Batches < c.Events/int64(c.BatchSize) || c.EventsPerS <= 0 {
			t.Errorf("projection catch-up at batch size %d: %+v", c.BatchSize, c)
		}
	}
	if len(res.ProjectionLag) != len(cfg.ProjectionRates) {
		t.Errorf("%d projection lag results, want one per rate %v", len(res.ProjectionLag), cfg.ProjectionRates)
	}
	for _, l := range res.ProjectionLag {
		if l.Commands <= 0 || l.Errors != 0 || l.Lag.P50 <= 0 || l.Lag.P50 > l.Lag.P99 || l.Dispatch.P50 <= 0 {
			t.Errorf("projection lag at %d/s: %+v", l.Rate, l)
		}
	}
	if len(res.Plans) == 0 {
		t.Error("no plans explained")
	}
	for _, p := range res.Plans {
		if p.Text == "" || p.SQL == "" {
			t.Errorf("empty plan %+v", p)
		}
	}
	if len(res.Targets) != 14 {
		t.Errorf("%d targets, want 14", len(res.Targets))
	}
	// The targets of the scenarios without a 16-client cell have no
	// checks in a quick run; the read side's and the effects' have.
	for _, tg := range res.Targets {
		if strings.HasPrefix(tg.Name, "catch-up") || strings.HasPrefix(tg.Name, "tail") || strings.HasPrefix(tg.Name, "effects") {
			if len(tg.Checks) == 0 {
				t.Errorf("target %q has no checks", tg.Name)
			}
		}
	}
	if res.Machine.CPUs == 0 || res.Machine.Postgres == "" || res.Machine.Settings["fsync"] == "" {
		t.Errorf("machine not described: %+v", res.Machine)
	}

	checkRendering(t, res)
}

// checkMeasurement holds one measured window to sane figures.
func checkMeasurement(t *testing.T, where string, clients int, m bench.Measurement) {
	t.Helper()
	at := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s/%d clients: "+format, append([]any{where, clients}, args...)...)
	}
	if m.Commands <= 0 || m.Seconds <= 0 || m.PerSecond <= 0 {
		at("no commands measured: %+v", m)
	}
	if m.Errors != 0 || m.FirstError != "" {
		at("%d errors, first: %s", m.Errors, m.FirstError)
	}
	for reason := range m.Rejections {
		if reason != "sold out" {
			at("unexpected rejection %q", reason)
		}
	}
	if m.Commands != m.Committed+m.Rejected || m.Dispatches < m.Commands+m.Conflicts {
		at("counts do not add up: %+v", m)
	}
	if l := m.Latency; l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		at("latency not ordered: %+v", l)
	}
	// The Temporal paths dispatch in the worker's context, which the
	// client's round-trip counter does not reach.
	if !strings.Contains(where, "/temporal") && (m.RoundTripsPer < 1 || m.StatementsPer < 1) {
		at("round trips %.2f, statements %.2f per dispatch", m.RoundTripsPer, m.StatementsPer)
	}
	if m.Retries < 0 || m.RetriesPerCommand < 0 {
		at("negative retries: %+v", m)
	}
}

func checkRendering(t *testing.T, res *bench.Results) {
	t.Helper()
	var js bytes.Buffer
	if err := bench.WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back bench.Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("results JSON does not read back: %v", err)
	}
	if len(back.Cells) != len(res.Cells) {
		t.Errorf("JSON has %d cells, want %d", len(back.Cells), len(res.Cells))
	}

	var md bytes.Buffer
	if err := bench.WriteMarkdown(&md, res, ""); err != nil {
		t.Fatal(err)
	}
	for _, heading := range []string{"## Machine", "## Targets", "## Disjoint contexts", "## One hot context", "## Mix", "## Stream-revision dispatch", "## History", "## Catch-up reads", "## Tailing reader", "## Outbox", "## From commit to effect", "## Projections", "## Dispatch with projections running", "## Commands through Temporal", "## Evidence", "## Analysis"} {
		if !strings.Contains(md.String(), heading) {
			t.Errorf("report lacks %q", heading)
		}
	}

	var svg bytes.Buffer
	if err := bench.WriteSVG(&svg, res); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
}

// TestAnalysisIsKept checks that a rewritten report keeps the hand-written
// analysis of the earlier one, and flags it when the run changed.
func TestAnalysisIsKept(t *testing.T) {
	res := &bench.Results{Run: bench.RunInfo{ID: "run-b"}}
	block := "<!-- analysis:begin run=run-a -->\nWhy keys wins.\n<!-- analysis:end -->"
	old := "# old report\n\n" + block + "\n"
	if got := bench.Analysis(old); got != block {
		t.Fatalf("Analysis = %q, want %q", got, block)
	}
	var md bytes.Buffer
	if err := bench.WriteMarkdown(&md, res, bench.Analysis(old)); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	if !strings.Contains(out, block) {
		t.Error("analysis block not kept")
	}
	if !strings.Contains(out, "written for run `run-a`") {
		t.Error("no note that the analysis belongs to another run")
	}
	md.Reset()
	if err := bench.WriteMarkdown(&md, res, ""); err != nil {
		t.Fatal(err)
	}
	if bench.Analysis(md.String()) == "" {
		t.Error("a report without analysis has no block to write one in")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
