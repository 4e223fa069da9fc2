package riversql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type contractArgs struct {
	N int `json:"n"`
}

func (contractArgs) Kind() string { return "contract" }

// contractWorker lets River complete job 1 and completes job 2 itself
// with CompleteSQL, in a transaction of its own, as the reaction worker
// does.
type contractWorker struct {
	river.WorkerDefaults[contractArgs]
	pool interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}
	done chan int
}

func (w *contractWorker) Work(ctx context.Context, job *river.Job[contractArgs]) error {
	if job.Args.N == 2 {
		if tag, err := w.pool.Exec(ctx, riversql.CompleteSQL, job.ID); err != nil || tag.RowsAffected() != 1 {
			return fmt.Errorf("completing job 2: %v, %d rows", err, tag.RowsAffected())
		}
	}
	w.done <- job.Args.N
	return nil
}

// The row this package writes is the row River's InsertManyTx writes, column
// by column (but the id and the times), and River works it like its own.
// If an upgrade of River changes the contract, this fails.
func TestRowsMatchRiversOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	workers := river.NewWorkers()
	w := &contractWorker{pool: pool, done: make(chan int, 4)}
	river.AddWorker(workers, w)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{"contract": {MaxWorkers: 2}},
		Workers: workers,
		// A long poll: the jobs below are fetched only because River's
		// producer is notified of them.
		FetchPollInterval: time.Hour,
		FetchCooldown:     time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}

	args, _ := json.Marshal(contractArgs{N: 2})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	theirs, err := client.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: contractArgs{N: 1}, InsertOpts: &river.InsertOpts{
		Queue: "contract", MaxAttempts: 7, Priority: 3, Tags: []string{"alpha", "b-c-d"}, Metadata: []byte(`{"x": "y"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	var ours int64
	b.Queue(riversql.InsertSQL, func() []any {
		var a riversql.Arrays
		a.Add(riversql.Job{Kind: "contract", Args: args, Queue: "contract", MaxAttempts: 7, Priority: 3, Tags: []string{"alpha", "b-c-d"}, Metadata: []byte(`{"x": "y"}`)})
		return a.Params()
	}()...).QueryRow(func(row pgx.Row) error { return row.Scan(&ours) })
	b.Queue(riversql.NotifySQL, "contract")
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// Every column but the id, the times and the args' content.
	const row = `SELECT to_jsonb(j) - 'id' - 'created_at' - 'scheduled_at' - 'args' FROM river_job j WHERE id = $1`
	var a, c map[string]any
	if err := pool.QueryRow(ctx, row, theirs[0].Job.ID).Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, row, ours).Scan(&c); err != nil {
		t.Fatal(err)
	}
	aj, _ := json.Marshal(a)
	cj, _ := json.Marshal(c)
	if string(aj) != string(cj) {
		t.Fatalf("River's row and ours differ:\nRiver: %s\nours:  %s", aj, cj)
	}
	var sameTimes bool
	if err := pool.QueryRow(ctx, `SELECT created_at <= scheduled_at AND scheduled_at <= now() FROM river_job WHERE id = $1`, ours).Scan(&sameTimes); err != nil || !sameTimes {
		t.Fatalf("our job's times: %v %v", sameTimes, err)
	}

	// River works both, fetching ours on the notification alone.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := client.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	got := map[int]bool{}
	deadline := time.After(time.Minute)
	for len(got) < 2 {
		select {
		case n := <-w.done:
			got[n] = true
		case <-deadline:
			t.Fatalf("worked %v of jobs 1 and 2: River did not fetch ours on its notification", got)
		}
	}
	testriver.WaitFor(t, time.Minute, "both jobs completed", func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed' AND finalized_at IS NOT NULL`).Scan(&n)
		return n == 2, err
	})
	// Completed by River and completed by CompleteSQL: the same row.
	const done = `SELECT to_jsonb(j) - 'id' - 'created_at' - 'scheduled_at' - 'args' - 'attempted_at' - 'finalized_at' FROM river_job j WHERE id = $1`
	if err := pool.QueryRow(ctx, done, theirs[0].Job.ID).Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, done, ours).Scan(&c); err != nil {
		t.Fatal(err)
	}
	aj, _ = json.Marshal(a)
	cj, _ = json.Marshal(c)
	if string(aj) != string(cj) {
		t.Fatalf("completed by River and by CompleteSQL, the rows differ:\nRiver: %s\nours:  %s", aj, cj)
	}
}
