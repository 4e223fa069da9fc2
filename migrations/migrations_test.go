package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestUpIsIdempotentAndReportsStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.NewEmptyURL(t))

	st, err := migrations.ReadStatus(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current() || len(st.Pending()) == 0 {
		t.Fatalf("empty database reported current: %+v", st)
	}

	res, err := migrations.Up(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Factos) == 0 || len(res.River) == 0 {
		t.Fatalf("first run applied %+v, want factos and River versions", res)
	}
	again, err := migrations.Up(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Factos) != 0 || len(again.River) != 0 {
		t.Fatalf("second run applied %+v, want nothing", again)
	}
	st, err = migrations.ReadStatus(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Current() || len(st.Pending()) != 0 || len(st.Factos) == 0 || len(st.River) == 0 {
		t.Fatalf("status after Up: %+v", st)
	}
	for _, table := range []string{"factos_events", "factos_event_tags", "factos_commands", "river_job"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after Up (%v)", table, err)
		}
	}
}

// Several processes starting at once (each with its own pool, so its own
// sessions) all succeed, and the versions are applied once.
func TestConcurrentUpIsSafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewEmptyURL(t)
	const runners = 6
	var wg sync.WaitGroup
	applied := make([]*migrations.Result, runners)
	errs := make([]error, runners)
	start := make(chan struct{})
	for i := range runners {
		pool := testdb.Pool(t, url)
		wg.Go(func() {
			<-start
			applied[i], errs[i] = migrations.Up(ctx, pool, nil)
		})
	}
	close(start)
	wg.Wait()
	factos, river := 0, 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("runner %d: %v", i, err)
		}
		factos += len(applied[i].Factos)
		river += len(applied[i].River)
	}
	st, err := migrations.ReadStatus(ctx, testdb.Pool(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if factos != len(st.Factos) || river != len(st.River) {
		t.Fatalf("applied %d factos and %d River versions across runners, want each of %d and %d once", factos, river, len(st.Factos), len(st.River))
	}
}
