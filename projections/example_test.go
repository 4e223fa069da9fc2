package projections_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/projections"
)

// shopEvent is the example's event union.
type shopEvent interface{ isShopEvent() }

// orderPlaced is the example's one event.
type orderPlaced struct {
	Customer string `json:"customer"`
	Cents    int    `json:"cents"`
}

func (orderPlaced) isShopEvent() {}

func shopCodec() *eventstore.JSONCodec[shopEvent] {
	c := eventstore.NewJSONCodec[shopEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[orderPlaced]{Name: "OrderPlaced",
		Tags: func(e orderPlaced) []string { return []string{"customer:" + e.Customer} }})
	return c
}

// customerTotals is a view: orders and their sum per customer, in a table
// of its own, written in the runner's transaction.
func customerTotals() projections.Projection[shopEvent] {
	return projections.Projection[shopEvent]{
		Name:  "customer_totals",
		Query: eventstore.NewQuery(eventstore.Types("OrderPlaced")),
		Codec: shopCodec(),
		Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[shopEvent]) error {
			for _, r := range records {
				o := r.Event.(orderPlaced)
				if _, err := tx.Exec(ctx, `INSERT INTO customer_totals (customer, orders, cents) VALUES ($1, 1, $2)
					ON CONFLICT (customer) DO UPDATE SET orders = customer_totals.orders + 1, cents = customer_totals.cents + $2`,
					o.Customer, o.Cents); err != nil {
					return err
				}
			}
			return nil
		},
		Reset: func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error {
			if from > 0 {
				return fmt.Errorf("customer_totals is rebuilt from position 0 only")
			}
			_, err := tx.Exec(ctx, `DELETE FROM customer_totals`)
			return err
		},
	}
}

// exampleStore is a migrated database with the example's view table.
func exampleStore() (*eventstore.Store, func()) {
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx)
	if err != nil {
		panic(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		panic(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE customer_totals (customer text PRIMARY KEY, orders int NOT NULL, cents int NOT NULL)`); err != nil {
		panic(err)
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		panic(err)
	}
	return store, func() { pool.Close(); _ = drop() }
}

// Run a projection and read your own writes: append, then wait for the
// projection to apply the appended position before reading the view.
func Example() {
	ctx := context.Background()
	store, done := exampleStore()
	defer done()

	reg := projections.NewRegistry()
	if err := projections.AddProjection(reg, customerTotals()); err != nil {
		panic(err)
	}
	client, err := projections.New(store, reg, &projections.Config{LeaseInterval: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	codec := shopCodec()
	var last eventstore.Position
	for _, o := range []orderPlaced{{"ada", 1200}, {"bob", 500}, {"ada", 300}} {
		ev, _ := codec.Encode(o)
		res, err := store.Append(ctx, eventstore.AppendRequest{Stream: "orders-" + o.Customer, Events: []eventstore.EventData{ev}})
		if err != nil {
			panic(err)
		}
		last = res.Records[0].Position
	}
	if err := client.WaitFor(ctx, "customer_totals", last); err != nil {
		panic(err)
	}
	var orders, cents int
	_ = store.Pool().QueryRow(ctx, `SELECT orders, cents FROM customer_totals WHERE customer = 'ada'`).Scan(&orders, &cents)
	fmt.Printf("ada: %d orders, %d cents\n", orders, cents)
	// Output:
	// ada: 2 orders, 1500 cents
}

// A command line rebuilds a view without running a worker: Rebuild resets
// it and, since no process holds its lease, applies the log itself.
func ExampleClient_Rebuild() {
	ctx := context.Background()
	store, done := exampleStore()
	defer done()
	codec := shopCodec()
	for _, o := range []orderPlaced{{"ada", 1200}, {"bob", 500}} {
		ev, _ := codec.Encode(o)
		if _, err := store.Append(ctx, eventstore.AppendRequest{Stream: "orders-" + o.Customer, Events: []eventstore.EventData{ev}}); err != nil {
			panic(err)
		}
	}

	reg := projections.NewRegistry()
	_ = projections.AddProjection(reg, customerTotals())
	client, _ := projections.New(store, reg, nil)
	reached, err := client.Rebuild(ctx, "customer_totals", &projections.RebuildOpts{
		ResetOpts: projections.ResetOpts{By: "ops", Reason: "new column"},
	})
	if err != nil {
		panic(err)
	}
	st, _ := client.StatusOf(ctx, "customer_totals")
	fmt.Printf("rebuilt to %d: %s, %d applied, lag %d, reset by %s (%s)\n", reached, st.State, st.Applied, st.LagEvents, st.LastReset.By, st.LastReset.Reason)

	_, err = client.Rebuild(ctx, "customer_totals", &projections.RebuildOpts{ResetOpts: projections.ResetOpts{From: 1}})
	fmt.Println(err)
	// Output:
	// rebuilt to 2: ok, 2 applied, lag 0, reset by ops (new column)
	// projections: customer_totals: error resetting the view: customer_totals is rebuilt from position 0 only
}
