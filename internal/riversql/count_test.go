package riversql_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/internal/testdb"
)

// CountJobs counts nothing in an empty table, then every row by its kind
// and state.
func TestCountJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	counts := func() []riversql.JobCount {
		t.Helper()
		got, err := riversql.CountJobs(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b riversql.JobCount) int {
			return strings.Compare(a.Kind+"/"+a.State, b.Kind+"/"+b.State)
		})
		return got
	}
	if got := counts(); len(got) != 0 {
		t.Fatalf("empty table: %+v", got)
	}
	job := func(kind string, pending bool) riversql.Job {
		return riversql.Job{Kind: kind, Args: []byte(`{}`), Queue: "q", MaxAttempts: 1, Priority: 1, Pending: pending}
	}
	var b pgx.Batch
	riversql.QueueInsert(&b, []riversql.Job{job("a", false), job("a", false), job("a", true), job("b", false)})
	if err := pool.SendBatch(ctx, &b).Close(); err != nil {
		t.Fatal(err)
	}
	want := []riversql.JobCount{{"a", "available", 2}, {"a", "pending", 1}, {"b", "available", 1}}
	if diff := cmp.Diff(want, counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}
