package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/devenv"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/reactors"
)

// workerProc is a running test worker.
type workerProc struct {
	cmd    *exec.Cmd
	addr   string
	logs   *bytes.Buffer
	mu     *sync.Mutex
	exited chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startTestWorker(t *testing.T, env []string) *workerProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := &workerProc{addr: addr, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan error, 1)}
	w.cmd = exec.Command(testWorkerBin)
	w.cmd.Env = append(env, "HTTP_ADDR="+addr)
	w.cmd.Stdout, w.cmd.Stderr = lockedWriter{w.mu, w.logs}, lockedWriter{w.mu, w.logs}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
		if t.Failed() {
			w.mu.Lock()
			t.Logf("worker %s logs (tail):\n%s", addr, tailString(w.logs.String(), 4000))
			w.mu.Unlock()
		}
	})
	testriver.WaitFor(t, 90*time.Second, "the worker to be ready", func() (bool, error) {
		select {
		case err := <-w.exited:
			w.exited <- err
			return false, fmt.Errorf("worker exited: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return w
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// The worker process under faults, one after another, while buyers keep
// buying (directly and through Temporal workflows): the worker is SIGKILLed
// while slow effects run and a new one takes over; PostgreSQL is stopped
// and started; the Temporal server is restarted; some effects hang past
// their timeout and some keep failing. Afterwards every invariant holds.
func TestWorkerSurvivesFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{MaxConnections: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Destroy() })
	tmp, err := devenv.StartTemporal(ctx, devenv.TemporalOpts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Destroy)

	pool, err := pgxpool.New(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Up(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + pg.URL(), "TEMPORAL_ADDRESS=" + tmp.Address(),
		"TEMPORAL_TASK_QUEUE=chaos", "SHUTDOWN_TIMEOUT=5s", "RIVER_JOB_TIMEOUT=2s", "RIVER_RESCUE_AFTER=3s",
		"CHAOS_SLOW_MS=300", "LOG_LEVEL=info",
	}
	cmd := exec.Command(testWorkerBin, "migrate")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chaos schema: %v %s", err, out)
	}

	// The buyers dispatch like the demo does: a store whose outbox inserts
	// through an insert-only River client.
	codec := tickets.NewCodec()
	reg := reactors.NewRegistry(nil)
	if err := tickets.RegisterReactions(reg, codec, pool); err != nil {
		t.Fatal(err)
	}
	if err := reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{Name: "chaos", Codec: codec,
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
	tc, err := client.Dial(client.Options{HostPort: tmp.Address(), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)

	concert := "faults"
	capacity := scale(120, 600)
	if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: concert, Capacity: capacity}, nil); err != nil {
		t.Fatal(err)
	}
	worker := startTestWorker(t, env)

	stopReader := make(chan struct{})
	reader := catchUp(ctx, store, stopReader)
	l := newLedger()
	buy := tickets.BuyTicketHandler(codec)
	buyers := capacity * 5 / 4
	var wg sync.WaitGroup
	var workflowIDs sync.Map
	sem := make(chan struct{}, 12)
	go func() {
		for i := range buyers {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				buyer := fmt.Sprint("b", i)
				switch {
				case i%17 == 3:
					buyer = fmt.Sprint("hang-", i)
				case i%17 == 5:
					buyer = fmt.Sprint("fail-", i)
				}
				cmd := tickets.BuyTicket{ConcertID: concert, BuyerID: buyer}
				if i%4 == 0 {
					// Through Temporal: the workflow's own retries carry it
					// through the faults; its command id is workflow/buy.
					id := fmt.Sprintf("%s/wf/%d", concert, i)
					workflowIDs.Store(id+"/buy", true)
					l.dispatchUntilDefinite(ctx, id, func(ctx context.Context, id string) error {
						run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "chaos"}, tickets.BuyTicketWorkflow, cmd)
						if err != nil {
							return &eventstore.StoreError{Op: "starting workflow", Err: err}
						}
						var p tickets.Purchase
						if err := run.Get(ctx, &p); err != nil {
							return &eventstore.StoreError{Op: "workflow", Err: err}
						}
						if !p.Sold {
							return &eventstore.RejectedError{Err: tickets.ErrSoldOut}
						}
						return nil
					})
					return
				}
				l.dispatchUntilDefinite(ctx, fmt.Sprintf("%s/buy/%d", concert, i), func(ctx context.Context, id string) error {
					_, err := eventstore.Dispatch(ctx, store, buy, cmd, &eventstore.DispatchOpts{CommandID: id})
					return err
				})
			})
			time.Sleep(10 * time.Millisecond) // a steady stream of buyers, so faults land mid-load
		}
	}()

	faults := map[string]string{}
	// Fault 1: SIGKILL while slow effects run; a new worker takes over.
	testriver.WaitFor(t, time.Minute, "several effects to be running", func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.slow' AND state = 'running'`).Scan(&n)
		return n >= 3, err
	})
	var running int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&running)
	if err := worker.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-worker.exited
	faults["sigkill"] = fmt.Sprintf("%d jobs running at the kill", running)
	worker = startTestWorker(t, env)

	// Fault 2: PostgreSQL stops for a while under load.
	time.Sleep(time.Second)
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the outage itself, not synchronisation
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	faults["postgres"] = "stopped for 2s"

	// Fault 3: the Temporal server restarts while workflows run.
	time.Sleep(time.Second)
	if err := tmp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	faults["temporal"] = "restarted"

	// Let the buyers finish, then the worker drain every job.
	testriver.WaitFor(t, 5*time.Minute, "every buyer to get an answer", func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.accepted)+len(l.rejected)+len(l.failed) == buyers, nil
	})
	wg.Wait()
	close(stopReader)
	testriver.WaitFor(t, 3*time.Minute, "every job to finish", func() (bool, error) {
		var pending int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')`).Scan(&pending)
		return err == nil && pending == 0, nil
	})

	// Invariants.
	sold := checkSale(t, ctx, pool, l, concert, capacity, func(id string) string {
		if _, wf := workflowIDs.Load(id + "/buy"); wf {
			return id + "/buy" // BuyTicketWorkflow's command id
		}
		return id
	})
	checkReactions(t, ctx, pool, concert, sold)
	var reactedChaos, slowEffects, slowRecorded, slowRuns, hangDiscarded, failDiscarded, hangPlanned, failPlanned int
	err = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM factos_reactions WHERE reactor = 'chaos'),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.slow'),
		(SELECT count(*) FROM chaos_effects),
		(SELECT coalesce(sum(runs), 0) FROM chaos_effects),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.hang' AND state = 'discarded' AND cardinality(errors) = 2),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.fail' AND state = 'discarded' AND cardinality(errors) = 3),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.hang'),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.chaos.fail')`).
		Scan(&reactedChaos, &slowEffects, &slowRecorded, &slowRuns, &hangDiscarded, &failDiscarded, &hangPlanned, &failPlanned)
	if err != nil {
		t.Fatal(err)
	}
	if reactedChaos != sold || slowEffects+hangPlanned+failPlanned != sold {
		t.Errorf("chaos reactor: %d reactions, %d effects for %d sales", reactedChaos, slowEffects+hangPlanned+failPlanned, sold)
	}
	if slowRecorded != slowEffects {
		t.Errorf("%d slow effects, %d recorded by the idempotent handler: an effect was lost", slowEffects, slowRecorded)
	}
	if hangDiscarded != hangPlanned || failDiscarded != failPlanned || hangPlanned == 0 || failPlanned == 0 {
		t.Errorf("hanging effects: %d of %d discarded after their attempts; failing: %d of %d", hangDiscarded, hangPlanned, failDiscarded, failPlanned)
	}
	checkCatchUp(t, ctx, pool, <-reader)
	// The worker's projection went through the same faults.
	waitCaughtUp(t, ctx, pool, tickets.ProjectionConcertSales)
	checkConcertSales(t, ctx, store)

	// The worker stops cleanly after all that.
	if err := worker.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-worker.exited:
		if err != nil {
			t.Errorf("worker exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("worker did not stop within 30s of SIGTERM")
	}
	l.mu.Lock()
	summary, _ := json.Marshal(map[string]any{"buyers": buyers, "accepted": len(l.accepted), "rejected": len(l.rejected),
		"client_retries": l.retries, "faults": faults, "slow_effects": slowEffects, "slow_effect_runs": slowRuns,
		"hang_discarded": hangDiscarded, "fail_discarded": failDiscarded})
	l.mu.Unlock()
	t.Logf("worker faults: %s", summary)
	if !strings.Contains(string(summary), "sigkill") {
		t.Fatal(errors.New("no fault ran"))
	}
}
