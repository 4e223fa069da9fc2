package factos_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.temporal.io/api/serviceerror"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
	"github.com/factos-go/factos/outbox"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

func shopPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := testdb.NewURL(t)
	pool := testdb.Pool(t, url)
	if _, err := pool.Exec(context.Background(), shopSchema); err != nil {
		t.Fatal(err)
	}
	return pool, url
}

func placeOrder(ctx context.Context, store *eventstore.Store, order, customer string) error {
	ev, err := shopCodec().Encode(orderPlaced{Order: order, Customer: customer})
	if err != nil {
		return err
	}
	_, err = store.Append(ctx, eventstore.AppendRequest{Stream: "order-" + order, Events: []eventstore.EventData{ev}})
	return err
}

// Processes that only dispatch (clients never started) and one that
// works (started) share a database: every order placed through any of
// them is thanked once, and each customer's thanks follow the order of
// their orders in the log (the ordered effects' sequencer runs with the
// worker's client).
func TestDispatchersAndAWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := shopPool(t)
	const dispatchers, perDispatcher, customers = 4, 500, 25

	worker, err := factos.NewClient(pool, shopRegistry(pool), &factos.Config{
		River: &river.Config{FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !worker.Works() {
		t.Fatal("a client with a reactor and an effect does not work")
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := worker.Stop(stopCtx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	var wg sync.WaitGroup
	for d := range dispatchers {
		// Each dispatcher is a process of its own: its pool, its client.
		dpool := testdb.Pool(t, url)
		client, err := factos.NewClient(dpool, shopRegistry(dpool), nil)
		if err != nil {
			t.Fatal(err)
		}
		for g := range 4 {
			wg.Go(func() {
				for i := g; i < perDispatcher; i += 4 {
					order := fmt.Sprintf("d%d-%d", d, i)
					if err := placeOrder(ctx, client.Store(), order, fmt.Sprint((d*perDispatcher+i)%customers)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	const total = dispatchers * perDispatcher
	testriver.WaitFor(t, 3*time.Minute, fmt.Sprintf("%d thanks", total), func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM shop_thanks`).Scan(&n)
		return n == total, err
	})
	// Per customer, thanks were written in the order of the orders'
	// positions: no later order's note before an earlier one's.
	var outOfOrder int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT position < lag(position) OVER (PARTITION BY customer ORDER BY seq) AS back FROM shop_thanks) s
		WHERE back`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder != 0 {
		t.Fatalf("%d thanks written before an earlier order's of the same customer", outOfOrder)
	}
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM factos_events`).Scan(&events); err != nil || events != total {
		t.Fatalf("%d events (%v), want %d", events, err, total)
	}
}

// A registry without reactors or effects makes a client that only
// dispatches: Start and Stop do nothing, and no job is enqueued.
func TestClientWithoutWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := shopPool(t)
	client, err := factos.NewClient(pool, reactors.NewRegistry(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if client.Works() {
		t.Fatal("an empty registry works")
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := placeOrder(ctx, client.Store(), "o-1", "ada"); err != nil {
		t.Fatal(err)
	}
	if err := client.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testriver.JobCounts(t, pool, ""); len(n) != 0 {
		t.Fatalf("jobs enqueued without reactors: %v", n)
	}
}

// A configuration NewClient cannot use is refused with ErrInvalidConfig.
func TestNewClientRefusesBadConfig(t *testing.T) {
	t.Parallel()
	pool, _ := shopPool(t)
	wired := shopRegistry(pool)
	if _, err := factos.NewClient(pool, wired, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pool *pgxpool.Pool
		reg  *reactors.Registry
		cfg  *factos.Config
	}{
		{"no pool", nil, reactors.NewRegistry(nil), nil},
		{"no registry", pool, nil, nil},
		{"river queues without workers", pool, reactors.NewRegistry(nil), &factos.Config{River: &river.Config{Queues: map[string]river.QueueConfig{"x": {MaxWorkers: 1}}}}},
		{"negative workers", pool, reactors.NewRegistry(nil), &factos.Config{EffectWorkers: -1}},
		{"registry wired twice", pool, wired, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := factos.NewClient(tc.pool, tc.reg, tc.cfg); !errors.Is(err, factos.ErrInvalidConfig) {
				t.Fatalf("NewClient: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// With a Temporal client (Config.Workflows), a reactor's effect starts a
// workflow on the real server: the front door registered the built-in
// Temporal effects before it took the registry's queues.
func TestClientStartsWorkflows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := shopPool(t)
	tc := testtemporal.Client(t)
	queue := testtemporal.UniqueID("frontdoor")
	reg := reactors.NewRegistry(nil)
	if err := reactors.AddReactor(reg, reactors.Reactor[shopEvent]{
		Name: "open_order_saga", Codec: shopCodec(), Subscribe: eventstore.NewQuery(eventstore.Types("OrderPlaced")),
		React: func(rec eventstore.Record[shopEvent]) ([]eventstore.PlannedEffect, error) {
			o := rec.Event.(orderPlaced)
			return []eventstore.PlannedEffect{temporaleffects.StartWorkflowEffect("saga/"+o.Order,
				temporaleffects.StartWorkflow{WorkflowID: queue + "-" + o.Order, WorkflowType: "OrderSaga"})}, nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	client, err := factos.NewClient(pool, reg, &factos.Config{
		Workflows: temporaleffects.Adapter{Client: tc, TaskQueue: queue},
		River:     &river.Config{FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	for i := range 3 {
		if err := placeOrder(ctx, client.Store(), fmt.Sprint("o", i), "ada"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		id := fmt.Sprintf("%s-o%d", queue, i)
		testriver.WaitFor(t, time.Minute, "workflow "+id, func() (bool, error) {
			d, err := tc.DescribeWorkflow(ctx, id, "")
			if nf := (*serviceerror.NotFound)(nil); errors.As(err, &nf) {
				return false, nil // the effect has not run yet
			} else if err != nil {
				return false, err
			}
			return d.WorkflowType.Name == "OrderSaga", nil
		})
	}
}

// auditArgs is the application's own River job.
type auditArgs struct {
	Order string `json:"order"`
}

func (auditArgs) Kind() string { return "shop.audit" }

func (auditArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "audit"} }

type auditWorker struct {
	river.WorkerDefaults[auditArgs]
	pool *pgxpool.Pool
}

func (w *auditWorker) Work(ctx context.Context, job *river.Job[auditArgs]) error {
	_, err := w.pool.Exec(ctx, `INSERT INTO shop_audit (order_id) VALUES ($1) ON CONFLICT DO NOTHING`, job.Args.Order)
	return err
}

// The application's own jobs run on the front door's River client beside
// the registry's reactions and effects: its queues and workers are kept,
// the registry's added.
func TestClientRunsTheApplicationsOwnJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := shopPool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE shop_audit (order_id text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &auditWorker{pool: pool})
	client, err := factos.NewClient(pool, shopRegistry(pool), &factos.Config{River: &river.Config{
		Queues:  map[string]river.QueueConfig{"audit": {MaxWorkers: 2}},
		Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	for i := range 20 {
		order := fmt.Sprint("o", i)
		if err := placeOrder(ctx, client.Store(), order, "ada"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.River().Insert(ctx, auditArgs{Order: order}, nil); err != nil {
			t.Fatal(err)
		}
	}
	testriver.WaitFor(t, time.Minute, "20 thanks and 20 audits", func() (bool, error) {
		var thanks, audits int
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM shop_thanks), (SELECT count(*) FROM shop_audit)`).Scan(&thanks, &audits)
		return thanks == 20 && audits == 20, err
	})

	// A worker of a kind the registry also has is refused.
	clash := river.NewWorkers()
	river.AddWorker(clash, &clashWorker{})
	if _, err := factos.NewClient(pool, shopRegistry(pool), &factos.Config{River: &river.Config{Workers: clash}}); err == nil {
		t.Fatal("a River worker of the registry's reaction kind was accepted")
	}
}

// clashWorker works the registry's own reaction kind.
type clashWorker struct {
	river.WorkerDefaults[outbox.ReactionArgs]
}

func (*clashWorker) Work(context.Context, *river.Job[outbox.ReactionArgs]) error { return nil }
