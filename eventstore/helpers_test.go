package eventstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
	"github.com/factos-go/factos/internal/testdb"
)

var strategies = eventstore.LockStrategies

// bundle is what a store test works with.
type bundle struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *eventstore.Store
	shop  shop.Handlers
}

func setup(t *testing.T, cfg *eventstore.Config) *bundle {
	t.Helper()
	pool := testdb.New(t)
	store, err := eventstore.New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: context.Background(), pool: pool, store: store, shop: shop.New()}
}

// counts is the number of rows in each factos table, to prove that a
// failed dispatch wrote nothing.
type counts struct{ events, tags, commands int }

func (b *bundle) counts(t *testing.T) counts {
	t.Helper()
	var c counts
	err := b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM factos_events), (SELECT count(*) FROM factos_event_tags), (SELECT count(*) FROM factos_commands)`).Scan(&c.events, &c.tags, &c.commands)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// list puts an item on sale: one event with one tag.
func (b *bundle) list(t *testing.T, item string, stock int) {
	t.Helper()
	_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.List, shop.ListItem{Item: item, Stock: stock}, nil)
	if err != nil {
		t.Fatalf("list %s: %v", item, err)
	}
}

// examplePool returns a pool on a fresh migrated database for Example
// functions, which get no *testing.T. In an application this is
// pgxpool.New(ctx, os.Getenv("DATABASE_URL")) after migrations.Up.
func examplePool() (*pgxpool.Pool, func()) {
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx)
	if err != nil {
		panic(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		panic(err)
	}
	return pool, func() { pool.Close(); _ = drop() }
}
