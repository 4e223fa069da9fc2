package eventstore_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// Catch-up readers must see every event exactly once, in position order,
// even though transactions commit out of position order. The writers here
// hold their transaction open for a random moment after drawing positions,
// so later positions routinely commit first; the readers poll throughout.
func TestCatchUpReadersNeverSkipOrRepeat(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		// Hold each transaction open after its insert, so commits land out
		// of position order.
		dawdle := eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, _ []eventstore.RawRecord) error {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			return nil
		})
		store, err := eventstore.New(b.pool, &eventstore.Config{LockStrategy: b.store.LockStrategy(), Hooks: []eventstore.Hook{dawdle}, MaxAttempts: 200})
		if err != nil {
			t.Fatal(err)
		}
		for item := range 4 {
			b.list(t, fmt.Sprint(item), 1000)
		}
		filter := eventstore.NewQuery(eventstore.TypesAndTags([]string{shop.TypeItemSold}, shop.ItemTag("1")))

		var done atomic.Bool
		type seen struct {
			positions []eventstore.Position
			err       error
		}
		read := func(q *eventstore.Query, limit int) <-chan seen {
			out := make(chan seen, 1)
			go func() {
				var s seen
				var next eventstore.Position
				for {
					// Read once more after the writers finish so the tail
					// is included.
					finished := done.Load()
					page, err := b.store.ReadAfter(b.ctx, next, &eventstore.ReadAfterOpts{Query: q, Limit: limit})
					if err != nil {
						s.err = err
						break
					}
					for _, r := range page.Records {
						s.positions = append(s.positions, r.Position)
					}
					next = page.Next
					if finished && len(page.Records) < limit {
						break
					}
				}
				out <- s
			}()
			return out
		}
		all := read(nil, 7)
		filtered := read(&filter, 3)

		const n = 400
		errs := race(n, 24, func(i int) error {
			if i%3 == 0 {
				_, err := store.Append(b.ctx, eventstore.AppendRequest{
					Stream: fmt.Sprint("misc-", i),
					Events: []eventstore.EventData{{Type: "Misc", Data: []byte{1}}, {Type: "Misc", Tags: []string{"x"}}},
				})
				return err
			}
			_, err := eventstore.Dispatch(b.ctx, store, b.shop.Buy, shop.BuyItem{Item: fmt.Sprint(i % 4), Customer: fmt.Sprint(i)}, nil)
			return err
		})
		done.Store(true)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("writer %d: %v", i, err)
			}
		}

		var want, wantFiltered []eventstore.Position
		page, err := b.store.ReadAfter(b.ctx, 0, &eventstore.ReadAfterOpts{Limit: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			want = append(want, r.Position)
			if filter.Matches(r.Type, r.Tags) {
				wantFiltered = append(wantFiltered, r.Position)
			}
		}
		check := func(name string, got seen, want []eventstore.Position) {
			t.Helper()
			if got.err != nil {
				t.Fatalf("%s reader: %v", name, got.err)
			}
			seenOnce := map[eventstore.Position]int{}
			for i, p := range got.positions {
				seenOnce[p]++
				if i > 0 && got.positions[i-1] >= p {
					t.Fatalf("%s reader: position %d after %d: out of order or repeated", name, p, got.positions[i-1])
				}
			}
			for _, p := range want {
				if seenOnce[p] != 1 {
					t.Errorf("%s reader saw position %d %d times, want once", name, p, seenOnce[p])
				}
			}
			if len(got.positions) != len(want) {
				t.Errorf("%s reader saw %d events, want %d", name, len(got.positions), len(want))
			}
		}
		check("unfiltered", <-all, want)
		check("filtered", <-filtered, wantFiltered)
		if len(wantFiltered) == 0 {
			t.Fatal("no filtered events: the test proves nothing")
		}
	})
}

// ReadAfter on an idle log advances Next to the high-water mark so a
// filtered reader need not rescan what it has already passed.
func TestReadAfterAdvancesPastGaps(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for i := range 5 {
		_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprint("s", i), Events: []eventstore.EventData{{Type: "A"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	q := eventstore.NewQuery(eventstore.Types("B"))
	page, err := b.store.ReadAfter(b.ctx, 0, &eventstore.ReadAfterOpts{Query: &q})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 0 || page.Next != 5 {
		t.Fatalf("page = %d records, next %d; want 0 records, next 5", len(page.Records), page.Next)
	}
}

// On a store where nothing was ever appended, the position sequence has
// not been used: a reader must get Next 0, not the sequence's unused
// last_value of 1, or it skips the first event forever.
func TestReadAfterOnAnEmptyStoreKeepsTheFirstEvent(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		q := eventstore.NewQuery(eventstore.Types("A"))
		for _, opts := range []*eventstore.ReadAfterOpts{nil, {Query: &q}} {
			page, err := b.store.ReadAfter(b.ctx, 0, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != 0 || page.Next != 0 {
				t.Fatalf("empty store: %d records, next %d; want none, next 0", len(page.Records), page.Next)
			}
		}
		if _, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: "A"}}}); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []*eventstore.ReadAfterOpts{nil, {Query: &q}} {
			page, err := b.store.ReadAfter(b.ctx, 0, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != 1 || page.Records[0].Position != 1 || page.Next != 1 {
				t.Fatalf("after the first append: %+v; want position 1, next 1", page)
			}
		}
	})
}

// Readers that start on an empty database, before the first append, and
// follow 10,000 events written by concurrent writers whose transactions
// commit out of position order: each reader sees every event it selects
// exactly once, in position order.
func TestCatchUpFromAnEmptyStoreSeesEveryEventOnce(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		dawdle := eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, _ []eventstore.RawRecord) error {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return nil
		})
		filter := eventstore.NewQuery(eventstore.Tags("even"))
		var done atomic.Bool
		type result struct {
			positions []eventstore.Position
			err       error
		}
		started := make(chan struct{}, 2)
		follow := func(q *eventstore.Query, limit int) <-chan result {
			out := make(chan result, 1)
			go func() {
				var r result
				var next eventstore.Position
				for first := true; ; first = false {
					finished := done.Load()
					page, err := b.store.ReadAfter(b.ctx, next, &eventstore.ReadAfterOpts{Query: q, Limit: limit})
					if err != nil {
						r.err = err
						break
					}
					if first {
						if page.Next != 0 || len(page.Records) != 0 {
							r.err = fmt.Errorf("first read of the empty store: %d records, next %d", len(page.Records), page.Next)
							break
						}
						started <- struct{}{}
					}
					for _, rec := range page.Records {
						r.positions = append(r.positions, rec.Position)
					}
					next = page.Next
					if finished && len(page.Records) < limit {
						break
					}
				}
				out <- r
			}()
			return out
		}
		all := follow(nil, 97)
		filtered := follow(&filter, 41)
		<-started
		<-started

		const appends = 5000 // two events each
		errs := race(appends, 16, func(i int) error {
			var hooks []eventstore.Hook
			if i%4 == 0 {
				hooks = append(hooks, dawdle)
			}
			_, err := b.store.Append(b.ctx, eventstore.AppendRequest{
				Stream: fmt.Sprint("w-", i),
				Events: []eventstore.EventData{{Type: "E", Tags: []string{"even"}}, {Type: "O", Tags: []string{"odd"}}},
				Hooks:  hooks,
			})
			return err
		})
		done.Store(true)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		var want, wantFiltered []eventstore.Position
		for next := eventstore.Position(0); ; {
			page, err := b.store.ReadAfter(b.ctx, next, &eventstore.ReadAfterOpts{Limit: 5000})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) == 0 {
				break
			}
			for _, r := range page.Records {
				want = append(want, r.Position)
				if filter.Matches(r.Type, r.Tags) {
					wantFiltered = append(wantFiltered, r.Position)
				}
			}
			next = page.Next
		}
		if len(want) != 2*appends {
			t.Fatalf("%d events stored, want %d", len(want), 2*appends)
		}
		for name, c := range map[string]struct {
			got  result
			want []eventstore.Position
		}{"unfiltered": {<-all, want}, "filtered": {<-filtered, wantFiltered}} {
			if c.got.err != nil {
				t.Fatalf("%s reader: %v", name, c.got.err)
			}
			if !slices.Equal(c.got.positions, c.want) {
				t.Errorf("%s reader saw %d positions, want %d; first difference at %d", name, len(c.got.positions), len(c.want), firstDifference(c.got.positions, c.want))
			}
		}
	})
}

func firstDifference(a, b []eventstore.Position) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// The high-water mark never passes an event still in flight: once it
// returned h, no event at or below h appears later. Writers hold their
// transactions open after drawing positions, so later positions commit
// first; readers take marks throughout, from an empty database on.
func TestHighWaterMarkNeverPassesAnEventInFlight(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		if h, err := b.store.HighWaterMark(b.ctx, 0); err != nil || h != 0 {
			t.Fatalf("empty log: mark %d, %v; want 0", h, err)
		}
		dawdle := eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, _ []eventstore.RawRecord) error {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			return nil
		})
		store, err := eventstore.New(b.pool, &eventstore.Config{LockStrategy: b.store.LockStrategy(), Hooks: []eventstore.Hook{dawdle}})
		if err != nil {
			t.Fatal(err)
		}
		const writers, appends = 8, 40
		var done atomic.Bool
		type mark struct {
			h      eventstore.Position
			events int
		}
		marks := make(chan []mark, 2)
		for range 2 {
			go func() {
				var out []mark
				var h eventstore.Position
				for !done.Load() {
					var err error
					if h, err = b.store.HighWaterMark(b.ctx, h); err != nil {
						t.Error(err)
						break
					}
					var n int
					if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM factos_events WHERE position <= $1`, h).Scan(&n); err != nil {
						t.Error(err)
						break
					}
					out = append(out, mark{h, n})
				}
				marks <- out
			}()
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range appends {
					_, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprintf("w%d-%d", w, i),
						Events: []eventstore.EventData{{Type: "Note", Tags: []string{fmt.Sprintf("w:%d", w)}}}})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		done.Store(true)
		final, err := b.store.HighWaterMark(b.ctx, 0)
		if err != nil || final < writers*appends {
			t.Fatalf("final mark %d, %v; want at least %d", final, err, writers*appends)
		}
		for range 2 {
			for _, m := range <-marks {
				var n int
				if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM factos_events WHERE position <= $1`, m.h).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != m.events {
					t.Fatalf("mark %d: %d events at or below it then, %d now", m.h, m.events, n)
				}
			}
		}
	})
}

// A catch-up read never returns past a writer still in flight, however
// long the writer holds its transaction open: its tries fail, then it
// waits for the writer. Once the writer commits, the reader returns every
// event in position order, the late one included, from an empty database.
func TestCatchUpReadWaitsForAWriterInFlight(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		store, slow, unblock := holdSlowWriter(t, b)
		// Drawn after the slow writer's position, committed before it:
		// under keys, which lets writers of other streams through (table
		// holds them all behind the slow one).
		want := []string{"slow"}
		if b.store.LockStrategy() == eventstore.LockKeys {
			if _, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: "fast", Events: []eventstore.EventData{{Type: "A"}}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, "fast")
		}
		for _, opts := range []*eventstore.ReadAfterOpts{nil, {Query: new(eventstore.NewQuery(eventstore.Types("A")))}} {
			ctx, cancel := context.WithTimeout(b.ctx, 200*time.Millisecond)
			page, err := b.store.ReadAfter(ctx, 0, opts)
			cancel()
			if err == nil {
				t.Fatalf("read past a writer in flight: %d records, next %d", len(page.Records), page.Next)
			}
		}
		unblock()
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
		page, err := b.store.ReadAfter(b.ctx, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, r := range page.Records {
			got = append(got, r.Stream)
			if r.Position != eventstore.Position(i+1) {
				t.Fatalf("record %d at position %d", i, r.Position)
			}
		}
		if !slices.Equal(got, want) || page.Next != eventstore.Position(len(want)) {
			t.Fatalf("after the commit: streams %v, next %d; want %v, next %d", got, page.Next, want, len(want))
		}
	})
}

// A reader that tries its barrier never makes writers wait. One writer is
// held in flight, so the reader's tries keep failing (its fallback to
// waiting is put out of reach); meanwhile writers of other streams commit.
// A reader that waited for its locks would hold every one of them back
// (PostgreSQL queues them behind its exclusive request) until the held
// writer committed. Once it does, the reader returns every event.
func TestCatchUpReadersNeverHoldWritersBack(t *testing.T) {
	t.Parallel()
	b := setup(t, &eventstore.Config{LockStrategy: eventstore.LockKeys})
	eventstore.SetBarrierTries(b.store, math.MaxInt)
	writers, slow, unblock := holdSlowWriter(t, b)
	type result struct {
		page *eventstore.Page
		err  error
	}
	read := make(chan result, 1)
	go func() {
		page, err := b.store.ReadAfter(b.ctx, 0, nil)
		read <- result{page, err}
	}()
	const n = 200
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	errs := race(n, 8, func(i int) error {
		_, err := writers.Append(ctx, eventstore.AppendRequest{Stream: fmt.Sprint("w", i), Events: []eventstore.EventData{{Type: "A"}}})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d beside a trying reader: %v", i, err)
		}
	}
	select {
	case r := <-read:
		t.Fatalf("the reader returned while a writer was in flight: %+v, %v", r.page, r.err)
	default:
	}
	unblock()
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	r := <-read
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.page.Records) != n+1 || r.page.Records[0].Stream != "slow" {
		t.Fatalf("after the commit: %d records (first %+v); want %d, the slow one first", len(r.page.Records), r.page.Records[0], n+1)
	}
	for i, rec := range r.page.Records {
		if rec.Position != eventstore.Position(i+1) {
			t.Fatalf("record %d at position %d", i, rec.Position)
		}
	}
}

// holdSlowWriter appends one event to stream "slow" through a store of b's
// strategy whose hook holds the transaction open after the insert, and
// returns once it is held: the store (for more writers), the append's
// result, and unblock, which lets it commit (also run at cleanup, so that
// a failing test does not leave it holding its connection).
func holdSlowWriter(t *testing.T, b *bundle) (*eventstore.Store, <-chan error, func()) {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	var once sync.Once
	hold := eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, recs []eventstore.RawRecord) error {
		if recs[0].Stream == "slow" {
			once.Do(func() { close(held) })
			<-release
		}
		return nil
	})
	store, err := eventstore.New(b.pool, &eventstore.Config{LockStrategy: b.store.LockStrategy(), Hooks: []eventstore.Hook{hold}})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: "slow", Events: []eventstore.EventData{{Type: "A"}}})
		slow <- err
	}()
	select {
	case <-held:
	case err := <-slow:
		t.Fatalf("the slow append ended before its hook held it: %v", err)
	}
	return store, slow, unblock
}
