package factosfx_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite deploy/worker-metrics.json from the worker's registry")

// metricsFile lists the metrics the worker's /metrics serves. The chart's
// tests (deploy/) check every metric the Grafana dashboard and the alert
// rules query against it; this test keeps it true.
const metricsFile = "../deploy/worker-metrics.json"

// listedMetric is one metric family of worker-metrics.json.
type listedMetric struct {
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
	Help   string   `json:"help"`
}

// descFields reads a prometheus.Desc's name, help and label names from its
// String(), the only way client_golang shows them. Unquoting the help and
// the check below catch a change of that format.
var descFields = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), unit: "[^"]*", constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// TestWorkerMetricsListed builds the whole worker (against no database),
// describes every metric registered on the registry
// /metrics serves, and compares them with worker-metrics.json. After
// changing a metric: go test ./factosfx -run TestWorkerMetricsListed -update
func TestWorkerMetricsListed(t *testing.T) {
	t.Parallel()
	cfg, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x", "HTTP_ADDR": freeAddr(t)}))
	if err != nil {
		t.Fatal(err)
	}
	var m *factosfx.Metrics
	// Started and stopped so that the pool and the Temporal client close;
	// with no database the worker does nothing in between.
	startApp(t, cfg, ticketDomain(), &testlog.Buffer{}, fx.Populate(&m))()
	descs := make(chan *prometheus.Desc)
	go func() {
		m.Registry.Describe(descs)
		close(descs)
	}()
	byName := map[string]listedMetric{}
	for d := range descs {
		f := descFields.FindStringSubmatch(d.String())
		if f == nil {
			t.Fatalf("cannot read %s", d)
		}
		name, err1 := strconv.Unquote(f[1])
		help, err2 := strconv.Unquote(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("cannot read %s", d)
		}
		lm := byName[name]
		lm.Name, lm.Help = name, help
		for _, pair := range strings.Split(f[3], ",") {
			if k, _, ok := strings.Cut(pair, "="); ok {
				lm.Labels = append(lm.Labels, k)
			}
		}
		for _, l := range strings.Split(f[4], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				lm.Labels = append(lm.Labels, l)
			}
		}
		slices.Sort(lm.Labels)
		lm.Labels = slices.Compact(lm.Labels)
		byName[name] = lm
	}
	var got []listedMetric
	for _, lm := range byName {
		if lm.Labels == nil {
			lm.Labels = []string{}
		}
		got = append(got, lm)
	}
	slices.SortFunc(got, func(a, b listedMetric) int { return strings.Compare(a.Name, b.Name) })
	for _, want := range []string{"factos_dispatches_total", "factos_reaction_lag_seconds", "factos_river_jobs", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("the registry lacks %s", want)
		}
	}
	if l := byName["factos_dispatches_total"].Labels; !slices.Equal(l, []string{"op", "outcome", "strategy"}) {
		t.Errorf("factos_dispatches_total labels %v", l)
	}
	if l := byName["factos_pool_connections"].Labels; !slices.Equal(l, []string{"state"}) {
		t.Errorf("factos_pool_connections labels %v (a constant label)", l)
	}

	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	path := filepath.FromSlash(metricsFile)
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != string(out) {
		t.Errorf("%s is out of date: go test ./factosfx -run TestWorkerMetricsListed -update", metricsFile)
	}
}
