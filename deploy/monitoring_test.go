package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// The Grafana dashboard and the PrometheusRule query the worker's metrics.
// These tests check every query offline: it parses as PromQL, every metric
// it reads is one the worker serves (deploy/worker-metrics.json, which a
// factosfx test keeps equal to the worker's registry), every label it
// filters or groups by exists on those series, and it is scoped to one
// release.

// metric is one metric family of worker-metrics.json.
type metric struct {
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
	// external: not scraped from the worker, so without its target
	// labels (Labels are all it has).
	external bool
}

// targetLabels are the labels Prometheus adds to every series it scrapes
// through the chart's ServiceMonitor (the Prometheus Operator's target
// labels, plus instance and job).
var targetLabels = []string{"namespace", "service", "pod", "container", "endpoint", "job", "instance"}

// catalog is what the queries may read, by metric name.
type catalog map[string]metric

func workerMetrics(t *testing.T) catalog {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "worker-metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []metric
	if err := json.Unmarshal(raw, &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) < 10 {
		t.Fatalf("worker-metrics.json lists %d metrics", len(ms))
	}
	c := catalog{}
	for _, m := range ms {
		c[m.Name] = m
	}
	return c
}

// with returns c plus other metrics, for queries that read series from
// outside the worker (the alert rules' readiness).
func (c catalog) with(others ...metric) catalog {
	out := catalog{}
	for k, v := range c {
		out[k] = v
	}
	for _, m := range others {
		out[m.Name] = m
	}
	return out
}

// labelsOf returns the labels a series of name may carry, and whether the
// worker (or the others) serve it: histograms' _bucket, _sum and _count
// series and summaries' quantile label included.
func (c catalog) labelsOf(name string) ([]string, bool) {
	if m, ok := c[name]; ok {
		if m.external {
			return m.Labels, true
		}
		return slices.Concat(m.Labels, targetLabels, []string{"quantile"}), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := c[base]; ok && !m.external {
				l := slices.Concat(m.Labels, targetLabels)
				if suffix == "_bucket" {
					l = append(l, "le")
				}
				return l, true
			}
		}
	}
	return nil, false
}

// queryCheck is what checkQuery found in one expression.
type queryCheck struct {
	metrics []string // metric names read
}

// checkQuery parses expr and checks its metrics and labels against c. Each
// selector of a factos_ metric must carry the matchers of scope (label ->
// value), so that a query never mixes releases.
func checkQuery(t *testing.T, where, expr string, c catalog, scope map[string]string) queryCheck {
	t.Helper()
	var qc queryCheck
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return qc
	}
	selectorLabels := func(n parser.Node) []string {
		var all []string
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				l, _ := c.labelsOf(vs.Name)
				all = append(all, l...)
			}
			return nil
		})
		return all
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name == "" {
				t.Errorf("%s: a selector without a metric name in %q", where, expr)
				return nil
			}
			qc.metrics = append(qc.metrics, n.Name)
			labels, ok := c.labelsOf(n.Name)
			if !ok {
				t.Errorf("%s: %s is not a metric the worker serves (deploy/worker-metrics.json) in %q", where, n.Name, expr)
				return nil
			}
			matchers := map[string]string{}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					continue
				}
				matchers[m.Name] = m.Value
				if !slices.Contains(labels, m.Name) {
					t.Errorf("%s: %s has no label %q (labels: %v) in %q", where, n.Name, m.Name, labels, expr)
				}
			}
			if strings.HasPrefix(n.Name, "factos_") || n.Name == "up" {
				for k, v := range scope {
					if matchers[k] != v {
						t.Errorf("%s: %s is not scoped by %s=%q in %q", where, n.Name, k, v, expr)
					}
				}
			}
		case *parser.AggregateExpr:
			have := selectorLabels(n.Expr)
			for _, g := range n.Grouping {
				if !slices.Contains(have, g) {
					t.Errorf("%s: groups by %q, which the series below lack, in %q", where, g, expr)
				}
			}
		}
		return nil
	})
	return qc
}

// grafanaVars replaces Grafana's variables with values PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m")

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *datasource     `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func readDashboardFile(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "factos-worker.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDashboard checks the Grafana dashboard: valid JSON, a layout Grafana
// draws as meant, every query valid against the worker's metrics and scoped
// by the dashboard's namespace and job, and a panel for every factos metric
// the worker serves.
func TestDashboard(t *testing.T) {
	t.Parallel()
	raw := readDashboardFile(t)
	if !json.Valid(raw) {
		t.Fatal("dashboards/factos-worker.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 || len(d.Panels) < 10 {
		t.Fatalf("dashboard %q uid %q schema %d with %d panels", d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	c := workerMetrics(t)

	// Variables: a Prometheus data source to pick, and label_values
	// queries on metrics the worker serves.
	vars := map[string]bool{}
	labelValues := regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "datasource" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		checkQuery(t, "variable "+v.Name, m[1], c, nil)
		metricName, _, _ := strings.Cut(m[1], "{")
		if l, _ := c.labelsOf(metricName); !slices.Contains(l, m[2]) {
			t.Errorf("variable %s: %s has no label %s", v.Name, metricName, m[2])
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: data source %+v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	for _, want := range []string{"datasource", "namespace", "job", "pod"} {
		if !vars[want] {
			t.Errorf("no variable %s", want)
		}
	}

	ids := map[int]bool{}
	queried := map[string]bool{}
	var cells []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
			}
			cells = append(cells, p)
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				t.Errorf("panel %d %q: no title or no query", p.ID, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %+v, want ${datasource}", p.Title, p.Datasource)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("panel %q: refId %q empty or twice", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				// $pod (All: .+) narrows the pods; namespace and job keep
				// one release, also where a query leaves $pod out.
				qc := checkQuery(t, fmt.Sprintf("panel %q", p.Title), grafanaVars.Replace(tg.Expr), c,
					map[string]string{"namespace": "$namespace", "job": "$job"})
				for _, m := range qc.metrics {
					queried[m] = true
				}
			}
		}
	}
	walk(d.Panels)
	for i, a := range cells {
		for _, b := range cells[i+1:] {
			if a.GridPos.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < a.GridPos.X+a.GridPos.W &&
				a.GridPos.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < a.GridPos.Y+a.GridPos.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	for name := range c {
		if !strings.HasPrefix(name, "factos_") {
			continue
		}
		covered := queried[name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			covered = covered || queried[name+suffix]
		}
		if !covered {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// promTemplateFuncs are the functions Prometheus' alert templates offer
// that the rules use; parsing with them catches a template Helm mangled.
var promTemplateFuncs = template.FuncMap{
	"humanize":         func(any) string { return "" },
	"humanizeDuration": func(any) string { return "" },
}

// ruleMetrics are the series from outside the worker that the rules read:
// Prometheus' own up, and kube-state-metrics' Deployment availability.
var ruleMetrics = []metric{
	{Name: "up", Labels: targetLabels, external: true},
	{Name: "kube_deployment_status_replicas_unavailable", Labels: []string{"namespace", "deployment", "instance", "job"}, external: true},
}

// TestPrometheusRule checks the rendered alert rules statically: their
// queries against the worker's metrics and scoped to the release, their
// durations, labels and annotations; that each alert can be turned off;
// and that a custom selector reaches every query.
func TestPrometheusRule(t *testing.T) {
	t.Parallel()
	c := workerMetrics(t).with(ruleMetrics...)
	rule := func(values string) *prometheusRule {
		t.Helper()
		rs := ofType[*prometheusRule](mustRender(t, nil, minimal+values))
		if len(rs) == 0 {
			return nil
		}
		return rs[0]
	}
	r := rule("prometheusRule:\n  enabled: true\n  alertLabels:\n    team: tickets\n")
	if r == nil || len(r.Spec.Groups) != 1 {
		t.Fatalf("rule %+v", r)
	}
	scope := map[string]string{"namespace": "factos", "job": "factos-factos-worker"}
	var alerts []string
	for _, ru := range r.Spec.Groups[0].Rules {
		where := "alert " + ru.Alert
		if slices.Contains(alerts, ru.Alert) {
			t.Errorf("%s twice", where)
		}
		alerts = append(alerts, ru.Alert)
		checkQuery(t, where, ru.Expr, c, scope)
		if ru.For != "" {
			if _, err := model.ParseDuration(ru.For); err != nil {
				t.Errorf("%s: for %q: %v", where, ru.For, err)
			}
		}
		if ru.Labels["severity"] == "" || ru.Labels["team"] != "tickets" {
			t.Errorf("%s: labels %v", where, ru.Labels)
		}
		for _, k := range []string{"summary", "description"} {
			a := ru.Annotations[k]
			if a == "" {
				t.Errorf("%s: no %s", where, k)
				continue
			}
			// Prometheus defines these before expanding a template.
			const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
			if _, err := template.New(k).Funcs(promTemplateFuncs).Parse(defs + a); err != nil {
				t.Errorf("%s: %s is not a valid Prometheus template: %v", where, k, err)
			}
		}
		if !strings.Contains(ru.Annotations["description"], "{{ $") {
			t.Errorf("%s: the description names no series: %q", where, ru.Annotations["description"])
		}
	}
	want := []string{"FactosEffectsDiscarded", "FactosReactionLagHigh", "FactosReactionBacklog", "FactosEffectSequenceHalted", "FactosProjectionLagEvents",
		"FactosProjectionLagSeconds", "FactosProjectionStuck", "FactosProjectionNotRunning", "FactosWorkerUnavailable",
		"FactosWorkerScrapeFailing"}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}

	// Each alert group turns off alone; all off, no PrometheusRule at all.
	groups := map[string][]string{
		"effectsDiscarded": {"FactosEffectsDiscarded"}, "reactionLag": {"FactosReactionLagHigh"},
		"reactionBacklog": {"FactosReactionBacklog"}, "effectSequenceHalted": {"FactosEffectSequenceHalted"}, "projectionLag": {"FactosProjectionLagEvents", "FactosProjectionLagSeconds"},
		"projectionStuck": {"FactosProjectionStuck"}, "projectionNotRunning": {"FactosProjectionNotRunning"},
		"notReady": {"FactosWorkerUnavailable", "FactosWorkerScrapeFailing"},
	}
	var allOff strings.Builder
	allOff.WriteString("prometheusRule:\n  enabled: true\n")
	for g, names := range groups {
		fmt.Fprintf(&allOff, "  %s:\n    enabled: false\n", g)
		r := rule(fmt.Sprintf("prometheusRule:\n  enabled: true\n  %s:\n    enabled: false\n", g))
		for _, ru := range r.Spec.Groups[0].Rules {
			if slices.Contains(names, ru.Alert) {
				t.Errorf("%s rendered with %s.enabled=false", ru.Alert, g)
			}
		}
		if got := len(r.Spec.Groups[0].Rules); got != len(want)-len(names) {
			t.Errorf("%s off: %d alerts", g, got)
		}
	}
	if r := rule(allOff.String()); r != nil {
		t.Errorf("a PrometheusRule without alerts rendered")
	}

	// A custom selector replaces the default on every worker query.
	r = rule("prometheusRule:\n  enabled: true\n  selector: 'cluster=\"eu\",app=\"tickets\"'\n")
	for _, ru := range r.Spec.Groups[0].Rules {
		if ru.Alert == "FactosWorkerUnavailable" {
			continue // kube-state-metrics' series: the Deployment's name
		}
		if !strings.Contains(ru.Expr, `cluster="eu",app="tickets"`) || strings.Contains(ru.Expr, `job="factos-factos-worker"`) {
			t.Errorf("%s ignores the selector: %s", ru.Alert, ru.Expr)
		}
	}

	// Thresholds come from the values.
	r = rule("prometheusRule:\n  enabled: true\n  reactionLag:\n    quantile: 0.95\n    thresholdSeconds: 12.5\n  reactionBacklog:\n    thresholdJobs: 42\n")
	for _, ru := range r.Spec.Groups[0].Rules {
		switch ru.Alert {
		case "FactosReactionLagHigh":
			if !strings.HasPrefix(ru.Expr, "histogram_quantile(0.95,") || !strings.HasSuffix(ru.Expr, "> 12.5") {
				t.Errorf("%s: %s", ru.Alert, ru.Expr)
			}
		case "FactosReactionBacklog":
			if !strings.HasSuffix(ru.Expr, "> 42") {
				t.Errorf("%s: %s", ru.Alert, ru.Expr)
			}
		}
	}
}
