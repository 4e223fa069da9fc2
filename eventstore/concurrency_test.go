package eventstore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// The concurrency suite: every rule shape, raced by many goroutines, under
// every lock strategy, with invariants checked against what the database
// holds. Run it repeatedly with -count; `make test` does.

// race runs n commands on `workers` goroutines released together, and
// returns each command's error.
func race(n, workers int, run func(i int) error) []error {
	errs := make([]error, n)
	var next atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = run(i)
			}
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func forEachStrategy(t *testing.T, fn func(t *testing.T, b *bundle)) {
	t.Helper()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			// Generous attempts: the baselines retry under contention, and
			// the suite checks correctness, not retry budgets.
			fn(t, setup(t, &eventstore.Config{LockStrategy: strategy, MaxAttempts: 200}))
		})
	}
}

func TestConcurrentSaleNeverOversells(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		items := map[string]int{"print": 17, "vinyl": 5}
		for id, stock := range items {
			b.list(t, id, stock)
		}
		const buyers = 200
		var mu sync.Mutex
		positions := map[eventstore.Position]bool{}
		errs := race(buyers, 32, func(i int) error {
			item := "print"
			if i%4 == 0 {
				item = "vinyl"
			}
			res, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Buy, shop.BuyItem{Item: item, Customer: fmt.Sprintf("b%d", i)}, nil)
			if err == nil {
				mu.Lock()
				positions[res.Records[0].Position] = true
				mu.Unlock()
			}
			return err
		})
		accepted := 0
		for i, err := range errs {
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, shop.ErrSoldOut):
			default:
				t.Errorf("buyer %d: unexpected error %v", i, err)
			}
		}
		if want := items["print"] + items["vinyl"]; accepted != want {
			t.Errorf("accepted %d purchases, want exactly %d", accepted, want)
		}
		for id, stock := range items {
			var editions []int
			rows, err := b.pool.Query(b.ctx, `SELECT (convert_from(data, 'UTF8')::jsonb->>'edition')::int, position FROM factos_events
				WHERE type = 'ItemSold' AND 'item:'||$1 = ANY(tags) ORDER BY position`, id)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var edition int
				var pos int64
				if err := rows.Scan(&edition, &pos); err != nil {
					t.Fatal(err)
				}
				editions = append(editions, edition)
				if !positions[eventstore.Position(pos)] {
					t.Errorf("stored sale at %d was not reported to any buyer", pos)
				}
			}
			if rows.Err() != nil {
				t.Fatal(rows.Err())
			}
			want := make([]int, stock)
			for i := range want {
				want[i] = i + 1
			}
			if !slices.Equal(editions, want) {
				t.Errorf("item %s: editions %v, want exactly 1..%d in order", id, editions, stock)
			}
		}
	})
}

func TestConcurrentUsernamesAreUnique(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		const names, attempts = 20, 300
		errs := race(attempts, 32, func(i int) error {
			_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Claim, shop.ClaimUsername{
				Customer: fmt.Sprintf("u%d", i), Username: fmt.Sprintf("name%d", i%names)}, nil)
			return err
		})
		winners := map[int]int{}
		for i, err := range errs {
			switch {
			case err == nil:
				winners[i%names]++
			case errors.Is(err, shop.ErrUsernameTaken):
			default:
				t.Errorf("registration %d: unexpected error %v", i, err)
			}
		}
		for n := range names {
			if winners[n] != 1 {
				t.Errorf("name%d has %d winners, want exactly 1", n, winners[n])
			}
		}
		var stored, distinct int
		if err := b.pool.QueryRow(b.ctx, `SELECT count(*), count(DISTINCT tag) FROM factos_event_tags WHERE tag LIKE 'username:%'`).Scan(&stored, &distinct); err != nil {
			t.Fatal(err)
		}
		if stored != names || distinct != names {
			t.Errorf("stored %d registrations of %d distinct names, want %d of %d", stored, distinct, names, names)
		}
	})
}

func TestConcurrentInvoiceNumbersAreGapless(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		const n = 150
		codec := newTestCodec()
		h := invoiceHandler(codec)
		errs := race(n*2, 24, func(i int) error {
			if i%2 == 1 {
				// Unrelated traffic in between must not disturb the rule.
				_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Claim, shop.ClaimUsername{Customer: fmt.Sprint(i), Username: fmt.Sprint("n", i)}, nil)
				return err
			}
			_, err := eventstore.Dispatch(b.ctx, b.store, h, CreateInvoice{InvoiceID: fmt.Sprint(i)}, nil)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("command %d: %v", i, err)
			}
		}
		var numbers []int
		rows, err := b.pool.Query(b.ctx, `SELECT (convert_from(data, 'UTF8')::jsonb->>'number')::int FROM factos_events WHERE type = 'InvoiceCreated' ORDER BY position`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var num int
			if err := rows.Scan(&num); err != nil {
				t.Fatal(err)
			}
			numbers = append(numbers, num)
		}
		for i, num := range numbers {
			if num != i+1 {
				t.Fatalf("invoice numbers in position order %v: want 1..%d without gaps or duplicates", numbers, n)
			}
		}
		if len(numbers) != n {
			t.Errorf("%d invoices stored, want %d", len(numbers), n)
		}
	})
}

func TestConcurrentAllEventsRuleSeesUnconditionalWriters(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		const n = 160
		codec := newTestCodec()
		h := checkpointHandler(codec)
		errs := race(n, 24, func(i int) error {
			if i%2 == 0 {
				// Writers that read nothing and check nothing: the
				// checkpoints must still see each of them or none.
				_, err := b.store.Append(b.ctx, eventstore.AppendRequest{
					Stream: fmt.Sprintf("noise-%d", i),
					Events: []eventstore.EventData{{Type: "Noise", Tags: []string{fmt.Sprintf("noise:%d", i)}, Data: []byte(`{}`)}},
				})
				return err
			}
			_, err := eventstore.Dispatch(b.ctx, b.store, h, TakeCheckpoint{ID: fmt.Sprint(i)}, nil)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("command %d: %v", i, err)
			}
		}
		// Each checkpoint saw exactly the events before it.
		rows, err := b.pool.Query(b.ctx, `SELECT (convert_from(data, 'UTF8')::jsonb->>'seen')::int,
			(SELECT count(*) FROM factos_events p WHERE p.position < e.position)
			FROM factos_events e WHERE type = 'Checkpoint' ORDER BY position`)
		if err != nil {
			t.Fatal(err)
		}
		checkpoints := 0
		for rows.Next() {
			var seen, before int
			if err := rows.Scan(&seen, &before); err != nil {
				t.Fatal(err)
			}
			checkpoints++
			if seen != before {
				t.Errorf("a checkpoint saw %d events but %d precede it", seen, before)
			}
		}
		if checkpoints != n/2 {
			t.Errorf("%d checkpoints stored, want %d", checkpoints, n/2)
		}
	})
}

func TestConcurrentMultiItemRule(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		codec := newTestCodec()
		const courses, capacity, students = 6, 5, 20
		for c := range courses {
			_, err := b.store.Append(b.ctx, eventstore.AppendRequest{
				Stream: fmt.Sprintf("course-%d", c),
				Events: []eventstore.EventData{encode[testEvent](t, codec, CourseDefined{Course: fmt.Sprint(c), Capacity: capacity})},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var cmds []Subscribe
		rng := rand.New(rand.NewPCG(1, 2))
		for s := range students {
			for _, c := range rng.Perm(courses) {
				cmds = append(cmds, Subscribe{Course: fmt.Sprint(c), Student: fmt.Sprint(s)})
			}
		}
		h := subscribeHandler(codec)
		errs := race(len(cmds), 32, func(i int) error {
			_, err := eventstore.Dispatch(b.ctx, b.store, h, cmds[i], nil)
			return err
		})
		accepted := 0
		for i, err := range errs {
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, errCourseFull), errors.Is(err, errTooManyCourses):
			default:
				t.Errorf("command %d %+v: unexpected error %v", i, cmds[i], err)
			}
		}
		perCourse, perStudent := map[string]int{}, map[string]int{}
		pairs := map[[2]string]int{}
		rows, err := b.pool.Query(b.ctx, `SELECT convert_from(data, 'UTF8')::jsonb->>'course', convert_from(data, 'UTF8')::jsonb->>'student'
			FROM factos_events WHERE type = 'StudentSubscribed'`)
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		for rows.Next() {
			var c, s string
			if err := rows.Scan(&c, &s); err != nil {
				t.Fatal(err)
			}
			stored++
			perCourse[c]++
			perStudent[s]++
			pairs[[2]string{c, s}]++
		}
		if stored != accepted {
			t.Errorf("%d subscriptions stored, %d accepted", stored, accepted)
		}
		for c, n := range perCourse {
			if n > capacity {
				t.Errorf("course %s oversubscribed: %d > %d", c, n, capacity)
			}
		}
		for s, n := range perStudent {
			if n > maxCoursesPerStudent {
				t.Errorf("student %s takes %d courses > %d", s, n, maxCoursesPerStudent)
			}
		}
		for p, n := range pairs {
			if n > 1 {
				t.Errorf("student %s subscribed %d times to course %s", p[1], n, p[0])
			}
		}
		// Demand (20 students x 3) exceeds supply (6 x 5): every seat sells.
		if accepted != courses*capacity {
			t.Errorf("accepted %d subscriptions, want %d (every seat, since demand exceeds supply)", accepted, courses*capacity)
		}
	})
}

func TestConcurrentStreamRevisions(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		codec := newTestCodec()
		h := counterHandler(codec)
		const n, counters = 200, 4
		errs := race(n, 32, func(i int) error {
			_, err := eventstore.Dispatch(b.ctx, b.store, h, Increment{Counter: fmt.Sprint(i % counters)}, nil)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("increment %d: %v", i, err)
			}
		}
		for c := range counters {
			records, head, err := b.store.ReadStream(b.ctx, "counter-"+fmt.Sprint(c), 0)
			if err != nil {
				t.Fatal(err)
			}
			if head != n/counters || len(records) != n/counters {
				t.Errorf("counter %d: head %d with %d records, want %d: an increment was lost", c, head, len(records), n/counters)
			}
			for i, r := range records {
				ev, err := codec.Decode(r)
				if err != nil {
					t.Fatal(err)
				}
				if r.Revision != int64(i+1) || ev.(Incremented).N != i+1 {
					t.Fatalf("counter %d record %d: revision %d value %d", c, i, r.Revision, ev.(Incremented).N)
				}
			}
		}
	})
}

func TestConcurrentExpectedRevisionAllowsOneWriter(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		for round := range 10 {
			stream := fmt.Sprintf("order-%d", round)
			errs := race(16, 16, func(i int) error {
				_, err := b.store.Append(b.ctx, eventstore.AppendRequest{
					Stream: stream, ExpectedRevision: eventstore.Revision(0),
					Events: []eventstore.EventData{{Type: "OrderPlaced", Data: []byte(fmt.Sprint(i))}},
				})
				return err
			})
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, eventstore.ErrConflict):
				default:
					t.Errorf("unexpected error %v", err)
				}
			}
			if ok != 1 {
				t.Errorf("round %d: %d writers succeeded with expected revision 0, want 1", round, ok)
			}
		}
		var dupes int
		if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM factos_events WHERE stream LIKE 'order-%' AND revision <> 1`).Scan(&dupes); err != nil {
			t.Fatal(err)
		}
		if dupes != 0 {
			t.Errorf("%d events beyond revision 1", dupes)
		}
	})
}

// The read-then-append path: callers decide outside the store with Read
// and guard the append with FailIfEventsMatch. Exactly one racer wins.
func TestConcurrentConditionalAppend(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		for round := range 10 {
			name := fmt.Sprintf("handle%d", round)
			q := eventstore.NewQuery(eventstore.TypesAndTags([]string{shop.TypeUsernameClaimed}, shop.UsernameTag(name)))
			errs := race(12, 12, func(i int) error {
				read, err := b.store.Read(b.ctx, q)
				if err != nil {
					return err
				}
				if len(read.Records) > 0 {
					return shop.ErrUsernameTaken
				}
				ev := encode[shop.Event](t, b.shop.Codec, shop.UsernameClaimed{Customer: fmt.Sprint(round, "-", i), Username: name})
				_, err = b.store.Append(b.ctx, eventstore.AppendRequest{
					Stream:    shop.CustomerStream(fmt.Sprint(round, "-", i)),
					Events:    []eventstore.EventData{ev},
					Condition: eventstore.FailIfEventsMatch(q, read.After),
				})
				return err
			})
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, eventstore.ErrConflict), errors.Is(err, shop.ErrUsernameTaken):
				default:
					t.Errorf("unexpected error %v", err)
				}
			}
			if ok != 1 {
				t.Errorf("round %d: %d racers registered %s, want 1", round, ok, name)
			}
		}
	})
}

// Under the keys strategy, commands on disjoint contexts never wait for
// each other's keys, so none of them ever needs a second attempt.
func TestKeysDisjointContextsNeverRetry(t *testing.T) {
	t.Parallel()
	var retried atomic.Int64
	b := setup(t, &eventstore.Config{Observer: func(info eventstore.DispatchInfo) {
		if info.Attempts > 1 {
			retried.Add(1)
		}
	}})
	errs := race(400, 32, func(i int) error {
		_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Claim, shop.ClaimUsername{Customer: fmt.Sprint(i), Username: fmt.Sprint("user", i)}, nil)
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := retried.Load(); n != 0 {
		t.Errorf("%d dispatches on disjoint contexts needed more than one attempt", n)
	}
}

func encode[E any](t *testing.T, codec eventstore.Codec[E], ev E) eventstore.EventData {
	t.Helper()
	d, err := codec.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
