package migrations_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/migrations"
)

func appFiles(versions int) fstest.MapFS {
	files := fstest.MapFS{}
	sqls := []string{
		"CREATE TABLE shop_orders (id text PRIMARY KEY, position bigint REFERENCES factos_events (position));",
		"ALTER TABLE shop_orders ADD COLUMN total integer NOT NULL DEFAULT 0;",
	}
	names := []string{"00001_orders.sql", "00002_order_totals.sql"}
	for i := range versions {
		files[names[i]] = &fstest.MapFile{Data: []byte("-- +goose Up\n" + sqls[i] + "\n")}
	}
	return files
}

// An application's line is applied after the store's and River's (its
// first version refers to factos_events), once however many processes
// run Up at once, listed by ReadStatus, and a version added later is
// pending until the next Up.
func TestApplicationMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewEmptyURL(t)
	app := &migrations.Application{Name: "shop", FS: appFiles(1)}
	cfg := &migrations.Config{Application: app}

	st, err := migrations.ReadStatus(ctx, testdb.Pool(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Pending(); !slices.Contains(got, "shop/1") || st.Current() {
		t.Fatalf("pending on an empty database: %v", got)
	}

	var wg sync.WaitGroup
	applied := make(chan []int64, 4)
	for range 4 {
		pool := testdb.Pool(t, url)
		wg.Go(func() {
			res, err := migrations.Up(ctx, pool, cfg)
			if err != nil {
				t.Error(err)
				return
			}
			applied <- res.Application
		})
	}
	wg.Wait()
	close(applied)
	var total []int64
	for a := range applied {
		total = append(total, a...)
	}
	if !slices.Equal(total, []int64{1}) {
		t.Fatalf("application versions applied by 4 concurrent runs: %v, want [1] once", total)
	}

	pool := testdb.Pool(t, url)
	app.FS = appFiles(2)
	st, err = migrations.ReadStatus(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Pending(); !slices.Equal(got, []string{"shop/2"}) {
		t.Fatalf("pending after a new version: %v, want [shop/2]", got)
	}
	lines := st.Lines()
	if len(lines) != 3 || lines[2].Name != "shop" || len(lines[2].Versions) != 2 || !lines[2].Versions[0].Applied {
		t.Fatalf("lines: %+v", lines)
	}
	res, err := migrations.Up(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Application, []int64{2}) || len(res.Factos) != 0 {
		t.Fatalf("second Up applied %+v, want application version 2 only", res)
	}
	if st, err = migrations.ReadStatus(ctx, pool, cfg); err != nil || !st.Current() {
		t.Fatalf("status after Up: %+v, %v", st, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM shop_migrations WHERE version_id > 0").Scan(&n); err != nil || n != 2 {
		t.Fatalf("shop_migrations records %d versions (%v), want 2", n, err)
	}
}

// A bad application is refused before anything is applied, with a typed
// error.
func TestInvalidApplicationIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		app  migrations.Application
	}{
		{"empty name", migrations.Application{FS: appFiles(1)}},
		{"upper case", migrations.Application{Name: "Shop", FS: appFiles(1)}},
		{"sql in name", migrations.Application{Name: "shop; DROP TABLE x", FS: appFiles(1)}},
		{"library line", migrations.Application{Name: "factos", FS: appFiles(1)}},
		{"library table", migrations.Application{Name: "shop", Table: "factos_migrations", FS: appFiles(1)}},
		{"no files", migrations.Application{Name: "shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := testdb.Pool(t, testdb.NewEmptyURL(t))
			_, err := migrations.Up(ctx, pool, &migrations.Config{Application: &tc.app})
			if !errors.Is(err, migrations.ErrInvalidApplication) {
				t.Fatalf("Up: %v, want ErrInvalidApplication", err)
			}
			var tables int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
				t.Fatalf("%d tables after a refused Up (%v), want none", tables, err)
			}
		})
	}
}
