package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/factos-go/factos/internal/testdb"
)

// A catch-up page reads about its own length of the log, even under the
// generic plan PostgreSQL caches for a prepared statement (pgx prepares
// every statement): that plan does not know the page's positions, and an
// earlier form of the read merge-joined the primary key from the log's
// first event on every page, so that a catch-up took time quadratic in
// the log's length.
func TestReadPageScansItsOwnSpanUnderAGenericPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	s, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	const appends, perAppend, after, limit = 40, 100, 3000, 100
	for i := range appends {
		events := make([]EventData, perAppend)
		for j := range events {
			events[j] = EventData{Type: []string{"A", "B"}[j%2], Data: []byte(`{}`)}
		}
		if _, err := s.Append(ctx, AppendRequest{Stream: fmt.Sprint("plan-", i), Events: events}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, sql := range []string{"ANALYZE factos_events", "SET plan_cache_mode = force_generic_plan"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    Query
	}{
		{"every event", AllEvents()},
		{"one type", NewQuery(Types("A"))},
		{"two types", NewQuery(Types("A", "B"))},
	} {
		var a args
		sql := readSQL(tc.q.normalized(), after, limit, &a)
		if _, err := conn.Exec(ctx, "PREPARE page AS "+sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []byte
		err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page("+literals(t, a)+")").Scan(&plan)
		if _, derr := conn.Exec(ctx, "DEALLOCATE page"); derr != nil {
			t.Fatal(derr)
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var root []struct{ Plan planNode }
		if err := json.Unmarshal(plan, &root); err != nil || len(root) != 1 {
			t.Fatalf("%s: plan %s: %v", tc.name, plan, err)
		}
		// A page of one type in two reads twice its length of the log;
		// the log holds 4,000 events and the page starts at 3,000.
		if n := root[0].Plan.maxEventRows(); n > 3*limit {
			t.Errorf("%s: a scan of factos_events returned %.0f rows for a page of %d after %d:\n%s", tc.name, n, limit, after, plan)
		}
	}
}

// planNode is a node of EXPLAIN's JSON output.
type planNode struct {
	Relation string     `json:"Relation Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// maxEventRows is the most rows one scan of factos_events returned, over
// all its loops.
func (n planNode) maxEventRows() float64 {
	var most float64
	if n.Relation == "factos_events" {
		most = n.Rows * max(n.Loops, 1)
	}
	for _, c := range n.Plans {
		most = max(most, c.maxEventRows())
	}
	return most
}

// literals renders a statement's arguments for EXECUTE.
func literals(t *testing.T, a args) string {
	t.Helper()
	out := make([]string, len(a))
	for i, v := range a {
		switch v := v.(type) {
		case int64, int:
			out[i] = fmt.Sprint(v)
		case []string:
			out[i] = "'{" + strings.Join(v, ",") + "}'"
		default:
			t.Fatalf("argument %d: %T", i, v)
		}
	}
	return strings.Join(out, ", ")
}
