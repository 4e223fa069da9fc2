package factosfx_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
)

// A worker whose jobs hold every connection of its pool is busy, not cut
// off: /readyz's check still finds the database reachable.
func TestReadinessWithEveryConnectionBusy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewEmptyURL(t)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for range 2 {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release)
	}
	r := factosfx.NewReadiness(&factosfx.Config{}, factosfx.Domain{}, pool, slog.New(slog.DiscardHandler))
	got, _ := r.Check(ctx)
	if got["database"] != "ok" {
		t.Fatalf("database %q with every connection of the pool busy, want ok", got["database"])
	}
}
