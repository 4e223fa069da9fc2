package eventstore_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// rowHook writes one row per appended event into hook_rows, in the
// statement that inserts the events, with its name and a note as bind
// parameters; for a sale it also queues a statement after the insert.
type rowHook struct {
	name string
	fail error
}

func (h rowHook) QueueAfterAppend(b *pgx.Batch, a eventstore.Appending) error {
	if h.fail != nil {
		return h.fail
	}
	a.Join(`INSERT INTO hook_rows (hook, position, event_id, type, note)
		SELECT ` + a.Bind(h.name) + `, position, id, type, ` + a.Bind(fmt.Sprintf("%s/%d", a.Stream, len(a.Events))) + ` FROM appended`)
	b.Queue(`SELECT 1`)
	return nil
}

const hookRowsSQL = `CREATE TABLE hook_rows (hook text, position bigint, event_id uuid, type text, note text, UNIQUE (hook, position))`

// Hooks that join the insert write exactly one row per event and hook,
// with the event's position and id, whatever the strategy and however
// often dispatches restart: deciders of their own context write events of
// a context that readers hold, so their write keys are known only after
// the decision, and an unavailable one makes the insert write nothing
// (and its hooks with it) and the dispatch restart. Sold-out purchases are
// rejected and write no hook row.
func TestConcurrentBatchHooksJoinTheInsert(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			var restarts atomic.Int64
			b := setup(t, &eventstore.Config{LockStrategy: strategy, MaxAttempts: 200,
				BatchHooks: []eventstore.BatchHook{rowHook{name: "first"}, rowHook{name: "second"}},
				Observer:   func(i eventstore.DispatchInfo) { restarts.Add(int64(i.Attempts - 1)) }})
			if _, err := b.pool.Exec(b.ctx, hookRowsSQL); err != nil {
				t.Fatal(err)
			}
			b.list(t, "print", 40)
			count := func(n int, _ fact) int { return n + 1 }
			reader := eventstore.Handler[int, fact, int]{Codec: factCodec{},
				Stream: func(i int) string { return fmt.Sprintf("reader-%d", i) },
				Query:  func(int) eventstore.Query { return eventstore.NewQuery(eventstore.Tags("doc:1")) },
				Decider: eventstore.Decider[int, fact, int]{Evolve: count, Decide: func(n, _ int) ([]fact, error) {
					return []fact{{Type: "Counted", Tags: []string{"doc:1"}, Seen: n}}, nil
				}}}
			decider := eventstore.Handler[int, fact, int]{Codec: factCodec{},
				Stream: func(i int) string { return fmt.Sprintf("decider-%d", i) },
				Query:  func(i int) eventstore.Query { return eventstore.NewQuery(eventstore.Tags(fmt.Sprintf("own:%d", i))) },
				Decider: eventstore.Decider[int, fact, int]{Evolve: count, Decide: func(int, int) ([]fact, error) {
					return []fact{{Type: "Edited", Tags: []string{"doc:1"}, Seen: -1}}, nil
				}}}
			const n = 600
			errs := race(n, 32, func(i int) error {
				var err error
				switch i % 3 {
				case 0:
					_, err = eventstore.Dispatch(b.ctx, b.store, reader, i, nil)
				case 1:
					_, err = eventstore.Dispatch(b.ctx, b.store, decider, i, nil)
				default:
					_, err = eventstore.Dispatch(b.ctx, b.store, b.shop.Buy, shop.BuyItem{Item: "print", Customer: fmt.Sprintf("b%d", i%50)}, nil)
					if errors.Is(err, shop.ErrSoldOut) {
						err = nil
					}
				}
				return err
			})
			for i, err := range errs {
				if err != nil {
					t.Errorf("command %d: %v", i, err)
				}
			}
			var events, sales, missing, wrong int
			err := b.pool.QueryRow(b.ctx, `SELECT
				(SELECT count(*) FROM factos_events),
				(SELECT count(*) FROM factos_events WHERE type = 'ItemSold'),
				(SELECT count(*) FROM factos_events e CROSS JOIN (VALUES ('first'), ('second')) AS h(name)
					WHERE NOT EXISTS (SELECT 1 FROM hook_rows r WHERE r.hook = h.name AND r.position = e.position)),
				(SELECT count(*) FROM hook_rows r LEFT JOIN factos_events e ON e.position = r.position
					WHERE e.id IS DISTINCT FROM r.event_id OR e.type IS DISTINCT FROM r.type OR r.note IS DISTINCT FROM e.stream || '/1')`).
				Scan(&events, &sales, &missing, &wrong)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + 2*n/3 + 40; events != want || sales != 40 || missing != 0 || wrong != 0 {
				t.Errorf("%d events (want %d), %d sales (want 40), %d hook rows missing, %d hook rows without their event or with wrong values",
					events, want, sales, missing, wrong)
			}
			t.Logf("%d restarts", restarts.Load())
		})
	}
}

// A hook that fails fails the dispatch with a *StoreError before anything
// is sent; nothing is written.
func TestFailingBatchHookWritesNothing(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	b := setup(t, &eventstore.Config{BatchHooks: []eventstore.BatchHook{rowHook{name: "ok"}, rowHook{name: "bad", fail: boom}}})
	if _, err := b.pool.Exec(b.ctx, hookRowsSQL); err != nil {
		t.Fatal(err)
	}
	_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.List, shop.ListItem{Item: "print", Stock: 1}, nil)
	var se *eventstore.StoreError
	if !errors.As(err, &se) || !errors.Is(err, boom) {
		t.Fatalf("err %v, want a *StoreError wrapping the hook's", err)
	}
	var rows int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM hook_rows`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if c := b.counts(t); c != (counts{}) || rows != 0 {
		t.Errorf("wrote %+v and %d hook rows", c, rows)
	}
}

// Appending.Join outside the store's call has no statement to join.
func TestAppendingJoinOutsideADispatchPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	eventstore.Appending{Stream: "s"}.Join("SELECT 1")
}
