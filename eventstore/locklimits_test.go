package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/devenv"
	"github.com/factos-go/factos/migrations"
)

// The documented limits on a PostgreSQL with default lock settings
// (max_locks_per_transaction 64, max_connections 100: 6,400 lock slots for
// the whole server). Several maximum-size appends (100 events of 32 tags:
// 6,400 fine keys each) hold their transactions a moment, as a slow hook
// would, while small dispatches go on beside them. Every one must succeed,
// and no transaction may hold more advisory locks than the budget.
func TestMaximumAppendsFitADefaultServer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL server of its own")
	}
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{MaxConnections: 100, Settings: map[string]string{"max_locks_per_transaction": "64"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Destroy() })
	cfg, err := pgxpool.ParseConfig(pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var locksPerTx, connections int
	if err := pool.QueryRow(ctx, `SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int`).Scan(&locksPerTx, &connections); err != nil {
		t.Fatal(err)
	}
	if locksPerTx != 64 || connections != 100 {
		t.Fatalf("server has max_locks_per_transaction %d, max_connections %d: not PostgreSQL's defaults", locksPerTx, connections)
	}
	if _, err := migrations.Up(ctx, pool, &migrations.Config{SkipRiver: true}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	maxHeld := 0
	slow := eventstore.HookFunc(func(ctx context.Context, tx pgx.Tx, _ []eventstore.RawRecord) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'`).Scan(&n); err != nil {
			return err
		}
		mu.Lock()
		maxHeld = max(maxHeld, n)
		mu.Unlock()
		time.Sleep(100 * time.Millisecond) // a slow hook, holding the locks
		return nil
	})
	store, err := eventstore.New(pool, &eventstore.Config{MaxAttempts: 100})
	if err != nil {
		t.Fatal(err)
	}
	bystanders, err := eventstore.New(pool, &eventstore.Config{MaxAttempts: 100})
	if err != nil {
		t.Fatal(err)
	}

	maximal := func(i int) []eventstore.EventData {
		events := make([]eventstore.EventData, eventstore.DefaultMaxEventsPerDispatch)
		for e := range events {
			ev := eventstore.EventData{Type: fmt.Sprintf("Big%d", e), Data: []byte("-1")}
			for g := range eventstore.DefaultMaxTagsPerEvent {
				ev.Tags = append(ev.Tags, fmt.Sprintf("big:%d:%d:%d", i, e, g))
			}
			events[e] = ev
		}
		return events
	}
	const big, small = 6, 300
	h := eventstore.Handler[int, fact, int]{
		Codec:  factCodec{},
		Stream: func(i int) string { return fmt.Sprint("small-", i) },
		Query: func(i int) eventstore.Query {
			return eventstore.NewQuery(eventstore.Tags(fmt.Sprint("big:0:0:", i%32)))
		},
		Decider: eventstore.Decider[int, fact, int]{
			Evolve: func(n int, _ fact) int { return n + 1 },
			Decide: func(n int, i int) ([]fact, error) {
				return []fact{{Type: "Small", Tags: []string{fmt.Sprint("small:", i)}, Seen: n}}, nil
			},
		},
	}
	errs := race(big+small, 24, func(i int) error {
		if i < big {
			_, err := store.Append(ctx, eventstore.AppendRequest{Stream: fmt.Sprint("big-", i), Events: maximal(i), Hooks: []eventstore.Hook{slow}})
			return err
		}
		_, err := eventstore.Dispatch(ctx, bystanders, h, i, nil)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("command %d: %v", i, err)
		}
	}
	if maxHeld > eventstore.DefaultMaxLockKeys {
		t.Errorf("a maximum-size append held %d advisory locks, budget %d", maxHeld, eventstore.DefaultMaxLockKeys)
	}
	var events, tags int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM factos_events), (SELECT count(*) FROM factos_event_tags)`).Scan(&events, &tags); err != nil {
		t.Fatal(err)
	}
	if want := big*eventstore.DefaultMaxEventsPerDispatch + small; events != want {
		t.Errorf("%d events stored, want %d", events, want)
	}
	if want := big*eventstore.DefaultMaxEventsPerDispatch*eventstore.DefaultMaxTagsPerEvent + small; tags != want {
		t.Errorf("%d tag rows stored, want %d", tags, want)
	}
}

// CommitUnknown means COMMIT was sent and no answer came back; a dispatch
// whose context ends before COMMIT leaves is a plain failure that wrote
// nothing, whether the commit would have traveled with the insert or after
// the hooks.
func TestCommitUnknownOnlyOnceCommitWasSent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	before := b.counts(t)
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, cancel func()) error
	}{
		{"cancelled while deciding", func(ctx context.Context, cancel func()) error {
			h := eventstore.Handler[int, fact, int]{
				Codec:  factCodec{},
				Stream: func(int) string { return "s" },
				Query:  func(int) eventstore.Query { return eventstore.NewQuery(eventstore.Tags("t")) },
				Decider: eventstore.Decider[int, fact, int]{
					Evolve: func(n int, _ fact) int { return n },
					Decide: func(int, int) ([]fact, error) {
						cancel() // not pure: a test's way to cancel between the round trips
						return []fact{{Type: "T", Tags: []string{"t"}}}, nil
					},
				},
			}
			_, err := eventstore.Dispatch(ctx, b.store, h, 1, nil)
			return err
		}},
		{"cancelled in a hook", func(ctx context.Context, cancel func()) error {
			hook := eventstore.HookFunc(func(context.Context, pgx.Tx, []eventstore.RawRecord) error { cancel(); return nil })
			_, err := b.store.Append(ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: "T", Data: []byte("{}")}}, Hooks: []eventstore.Hook{hook}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(b.ctx)
			defer cancel()
			err := tc.run(ctx, cancel)
			var se *eventstore.StoreError
			if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want a *StoreError wrapping context.Canceled", err)
			}
			if se.CommitUnknown {
				t.Errorf("CommitUnknown set, but COMMIT was never sent: %v", err)
			}
		})
	}
	if after := b.counts(t); after != before {
		t.Errorf("rows changed: %+v -> %+v", before, after)
	}
}
