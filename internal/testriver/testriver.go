// Package testriver runs real River clients in tests: wired to a
// reactors.Registry and an event store with the outbox installed, started,
// and stopped when the test ends.
package testriver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
)

// FastRetry retries failed jobs after a few milliseconds, so tests of
// retries and dead letters finish quickly.
type FastRetry struct{}

// NextRetry implements river.ClientRetryPolicy.
func (FastRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(5 * time.Millisecond) }

// Opts tune Start.
type Opts struct {
	// StoreConfig for the store; the outbox is appended to its hooks.
	StoreConfig *eventstore.Config
	// Workers per queue. Default 10.
	Workers int
	// NoStart leaves the client and the sequencer stopped (for tests of
	// what gets enqueued); Env.Run starts them.
	NoStart bool
}

// Env is a wired River client and store.
type Env struct {
	Client *river.Client[pgx.Tx]
	Store  *eventstore.Store
	Pool   *pgxpool.Pool
	fc     *factos.Client
}

// Run starts the client and the registry's sequencer of an Env started
// with NoStart, until ctx ends (or Client.Stop for the client).
func (e *Env) Run(ctx context.Context) error { return e.fc.Start(ctx) }

// Stop stops what Run started: River and the sequencer.
func (e *Env) Stop(ctx context.Context) error { return e.fc.Stop(ctx) }

// Start wires reg to a River client and a store on pool through the front
// door (factos.NewClient), with fast polling and retries, and starts the
// client and the registry's sequencer (which releases ordered effects).
func Start(t testing.TB, pool *pgxpool.Pool, reg *reactors.Registry, opts *Opts) *Env {
	t.Helper()
	if opts == nil {
		opts = &Opts{}
	}
	if opts.Workers == 0 {
		opts.Workers = 10
	}
	fc, err := factos.NewClient(pool, reg, &factos.Config{
		Store:           opts.StoreConfig,
		ReactionWorkers: opts.Workers,
		EffectWorkers:   opts.Workers,
		River: &river.Config{
			TestOnly:          true,
			FetchCooldown:     5 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
			RetryPolicy:       FastRetry{},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !opts.NoStart {
		ctx, cancel := context.WithCancel(context.Background())
		if err := fc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stopCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
			defer stop()
			if err := fc.Stop(stopCtx); err != nil {
				t.Errorf("error stopping River and the sequencer: %v", err)
			}
			cancel()
		})
	}
	return &Env{Client: fc.River(), Store: fc.Store(), Pool: pool, fc: fc}
}

// WaitFor polls cond until it returns true or the deadline passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// JobCounts returns the number of River jobs per state whose kind starts
// with prefix.
func JobCounts(t testing.TB, pool *pgxpool.Pool, prefix string) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state::text, count(*) FROM river_job WHERE kind LIKE $1 || '%' GROUP BY 1`, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			t.Fatal(err)
		}
		m[state] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// UIServer serves River UI (factosfx.NewRiverUIHandler's handler, which
// this package does not import, to stay out of the process wiring) under
// /riverui/ on a test server; the handler and the server stop when the
// test ends.
func UIServer(t testing.TB, ui interface {
	http.Handler
	Start(context.Context) error
}) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := ui.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/riverui/", ui)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
