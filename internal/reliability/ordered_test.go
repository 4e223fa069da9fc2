package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// orderedReactor is the test worker's chaos reactor of ordered effects
// (testworker.OrderedReactor: a main package cannot be imported).
const orderedReactor = "chaos-ordered"

// The worker is SIGKILLed in the middle of ordered effects, again and
// again, while buyers keep buying; each time a new worker takes over.
// Afterwards every sale's ordered effect ran exactly once (its record
// committed once), and every buyer's effects committed in the positions'
// order: a killed effect runs again before its key goes on. The chaos
// effect holds its transaction open after recording (CHAOS_ORDERED_MS),
// and the kill lands only once the database shows such an effect recorded
// and not committed.
func TestOrderedEffectsSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Pool(t, url)
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + url, "TEMPORAL_ENABLED=false", "SHUTDOWN_TIMEOUT=5s",
		"RIVER_JOB_TIMEOUT=2s", "RIVER_RESCUE_AFTER=3s", "CHAOS_ORDERED_MS=30", "LOG_LEVEL=info",
	}
	cmd := exec.Command(testWorkerBin, "migrate")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chaos schema: %v %s", err, out)
	}

	// The buyers dispatch through the outbox of a registry that knows the
	// worker's reactors (their names and subscriptions are what the
	// reaction job carries); the worker runs them.
	codec := tickets.NewCodec()
	reg := reactors.NewRegistry(nil)
	if err := tickets.RegisterReactions(reg, codec, pool); err != nil {
		t.Fatal(err)
	}
	if err := reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{Name: orderedReactor, Codec: codec,
		Subscribe: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)),
		React:     func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) { return nil, nil }}); err != nil {
		t.Fatal(err)
	}
	// A client that only dispatches: the worker processes run the jobs.
	fc, err := factos.NewClient(pool, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := fc.Store()
	const concerts = 4
	for c := range concerts {
		if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: fmt.Sprint("k", c), Capacity: 1_000_000}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// 6 goroutines, 20 buyers each: 120 ordering keys, each with a steady
	// stream of sales from one goroutine and effects queued behind each
	// other.
	var stop atomic.Bool
	var sold atomic.Int64
	var wg sync.WaitGroup
	buy := tickets.BuyTicketHandler(codec)
	for w := range 6 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				_, err := eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: fmt.Sprint("k", i%concerts), BuyerID: fmt.Sprintf("b%d-%d", w, i%20)}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				sold.Add(1)
				time.Sleep(2 * time.Millisecond) // a steady stream, not a flood
			}
		})
	}

	recorded := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM chaos_ordered`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	kills := scale(3, 10)
	worker := startTestWorker(t, env)
	for k := range kills {
		testriver.WaitFor(t, time.Minute, "an ordered effect recorded and not committed", func() (bool, error) {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND backend_xid IS NOT NULL AND query LIKE '%chaos ordered%'`).Scan(&n)
			return n > 0, err
		})
		before := recorded()
		if err := worker.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-worker.exited
		killed := time.Now()
		worker = startTestWorker(t, env)
		// The next kill comes once the new worker has run a good many
		// effects (the killed one's key waits for River's rescue of its job).
		testriver.WaitFor(t, time.Minute, "the new worker to run ordered effects", func() (bool, error) {
			return recorded() > before, nil
		})
		t.Logf("kill %d: %d effects recorded at the kill; the new worker recorded more %s after", k+1, before, time.Since(killed).Round(time.Millisecond))
		testriver.WaitFor(t, 2*time.Minute, "40 more ordered effects", func() (bool, error) {
			return recorded() >= before+40, nil
		})
	}
	stop.Store(true)
	wg.Wait()

	var sales []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(position ORDER BY position), '{}') FROM factos_events WHERE type = $1`, tickets.TypeTicketSold).Scan(&sales); err != nil {
		t.Fatal(err)
	}
	if int64(len(sales)) != sold.Load() {
		t.Fatalf("%d sales in the log, %d dispatched", len(sales), sold.Load())
	}
	testriver.WaitFor(t, 3*time.Minute, "every sale's ordered effect", func() (bool, error) {
		return recorded() >= len(sales), nil
	})
	// Exactly once: one record per sale (the key makes duplicates
	// impossible, so count the positions), nothing else.
	var positions []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(position ORDER BY position), '{}') FROM chaos_ordered`).Scan(&positions); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(positions, sales) {
		t.Fatalf("%d ordered effects recorded for %d sales: lost or extra", len(positions), len(sales))
	}
	// In order per buyer: the records' commit order (seq) follows the
	// positions.
	rows, err := pool.Query(ctx, `SELECT ordering_key, array_agg(position ORDER BY seq) FROM chaos_ordered GROUP BY ordering_key`)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for rows.Next() {
		var key string
		var seq []int64
		if err := rows.Scan(&key, &seq); err != nil {
			t.Fatal(err)
		}
		keys++
		if !slices.IsSorted(seq) {
			t.Errorf("key %s ran out of order: %v", key, seq)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if keys != 120 {
		t.Errorf("%d ordering keys, want 120", keys)
	}
	testriver.WaitFor(t, time.Minute, "every sequence row done", func() (bool, error) {
		var open int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM factos_effect_sequences WHERE state <> 'done'`).Scan(&open)
		return open == 0, err
	})
	t.Logf("%d sales, %d keys, %d kills mid-effect", len(sales), keys, kills)
}
