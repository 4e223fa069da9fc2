package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
)

// The worker is SIGKILLed in the middle of projection batches, again and
// again, while buyers keep buying; each time a new worker takes over.
// Afterwards every projection's view equals the fold of the log: nothing
// applied twice, nothing lost. The chaos projection holds each batch's
// transaction open after writing its rows (CHAOS_PROJECTION_MS), and the
// kill lands only once the database shows such a batch written and not
// committed.
func TestProjectionsSurviveSIGKILLMidBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Pool(t, url)
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + url, "TEMPORAL_ENABLED=false", "SHUTDOWN_TIMEOUT=5s",
		"CHAOS_PROJECTION_MS=40", "PROJECTION_BATCH_SIZE=25", "PROJECTION_LEASE_INTERVAL=500ms", "LOG_LEVEL=info",
	}
	cmd := exec.Command(testWorkerBin, "migrate")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chaos schema: %v %s", err, out)
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec := tickets.NewCodec()
	const concerts = 4
	for c := range concerts {
		if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: fmt.Sprint("k", c), Capacity: 1_000_000}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var sold atomic.Int64
	var wg sync.WaitGroup
	buy := tickets.BuyTicketHandler(codec)
	for w := range 6 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				_, err := eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: fmt.Sprint("k", i%concerts), BuyerID: fmt.Sprintf("b%d-%d", w, i%40)}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				sold.Add(1)
				time.Sleep(time.Millisecond) // a steady stream, not a flood
			}
		})
	}

	kills := scale(3, 10)
	var takeovers []time.Duration
	worker := startTestWorker(t, env)
	for k := range kills {
		testriver.WaitFor(t, time.Minute, "a chaos batch written and not committed", func() (bool, error) {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND backend_xid IS NOT NULL AND query LIKE '%chaos projection%'`).Scan(&n)
			return n > 0, err
		})
		before := checkpoint(t, pool, "chaos")
		if err := worker.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-worker.exited
		killed := time.Now()
		worker = startTestWorker(t, env)
		testriver.WaitFor(t, time.Minute, "the new worker to move the checkpoint", func() (bool, error) {
			return checkpoint(t, pool, "chaos") > before, nil
		})
		takeovers = append(takeovers, time.Since(killed))
		t.Logf("kill %d: checkpoint %d at the kill; the new worker moved it %s after", k+1, before, time.Since(killed).Round(time.Millisecond))
	}
	stop.Store(true)
	wg.Wait()

	waitCaughtUp(t, ctx, pool, "chaos", tickets.ProjectionConcertSales)
	// The chaos view: every sale once, in position order.
	var applied, want []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(position ORDER BY seq), '{}') FROM chaos_projection`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(position ORDER BY position), '{}') FROM factos_events WHERE type = $1`, tickets.TypeTicketSold).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(applied, want) {
		t.Fatalf("chaos view: %d rows for %d sales; applied twice or lost (first rows %v)", len(applied), len(want), applied[:min(len(applied), 20)])
	}
	if int64(len(want)) != sold.Load() {
		t.Fatalf("%d sales in the log, %d dispatched", len(want), sold.Load())
	}
	checkConcertSales(t, ctx, store)
	t.Logf("%d sales, %d kills mid-batch, takeovers %v", len(want), kills, takeovers)
}

// checkpoint reads a projection's checkpoint (0 before it ran).
func checkpoint(t *testing.T, pool *pgxpool.Pool, name string) int64 {
	t.Helper()
	var pos int64
	err := pool.QueryRow(context.Background(), `SELECT coalesce((SELECT position FROM factos_projections WHERE name = $1), 0)`, name).Scan(&pos)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// waitCaughtUp waits until the projections' checkpoints reach the log's
// head as of now.
func waitCaughtUp(t *testing.T, ctx context.Context, pool *pgxpool.Pool, names ...string) {
	t.Helper()
	var head int64
	if err := pool.QueryRow(ctx, `SELECT last_value FROM factos_events_position_seq`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		testriver.WaitFor(t, 2*time.Minute, n+" to catch up", func() (bool, error) {
			return checkpoint(t, pool, n) >= head, nil
		})
	}
}

// checkConcertSales checks that the ticket domain's projection equals the
// fold of the log.
func checkConcertSales(t *testing.T, ctx context.Context, store *eventstore.Store) {
	t.Helper()
	want, err := tickets.ConcertSalesFromLog(ctx, store, tickets.NewCodec())
	if err != nil {
		t.Fatal(err)
	}
	view, err := tickets.ReadConcertSales(ctx, store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(view, want) || len(view) == 0 {
		t.Fatalf("the concert_sales view differs from the fold of the log:\nview %v\nfold %v", view, want)
	}
}
