package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/projections"
)

var (
	allEvents = eventstore.AllEvents()
	onlyA     = eventstore.NewQuery(eventstore.Types("A"))
)

// dawdle holds a writer's transaction open for a random moment after its
// positions are drawn, so that later positions routinely commit first; one
// append in a hundred rolls back, leaving gaps. (About 51 of the 5,120
// appends below: the test's 10,000-event floor sits ten standard deviations
// away; at one in fifty it sat under two, and failed about one run in twenty.)
var dawdle = eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, _ []eventstore.RawRecord) error {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	if rand.IntN(100) == 0 {
		return errRolledBack
	}
	return nil
})

var errRolledBack = errors.New("rolled back on purpose")

// Every matching event is applied exactly once, in position order, by
// projections started on a new, empty database before the first append,
// while 16 writers append 10,240 events whose commits land out of position
// order and some of which roll back.
func TestAppliesEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := spec{name: "all", query: allEvents, batch: 100, applier: "c"}
	filtered := spec{name: "only-a", query: onlyA, batch: 7, applier: "c"}
	c := b.client(testConfig("c"), all, filtered)
	b.start(c)

	const appends = 5120 // two events each
	errs := race(appends, 16, func(i int) error {
		_, err := b.appendNotes(fmt.Sprint("s", i), []eventstore.Hook{dawdle}, "A", "B")
		if errors.Is(err, errRolledBack) {
			return nil
		}
		return err
	})
	if err := firstError(errs); err != nil {
		t.Fatal(err)
	}
	head := b.head()
	for _, name := range []string{"all", "only-a"} {
		if err := c.WaitFor(b.ctx, name, head); err != nil {
			t.Fatal(err)
		}
	}
	got := b.checkView("all", allEvents)
	b.checkView("only-a", onlyA)
	if len(got) < 10_000 {
		t.Fatalf("only %d events applied: the test proves too little", len(got))
	}
	sts, err := c.Status(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.State != projections.StateOK || st.Position != head || st.LagEvents != 0 || !st.Running || st.Owner != "c" {
			t.Errorf("status %+v, want ok at %d, running, owned by c", st, head)
		}
	}
}

// A projection started on a database where nothing was ever appended
// applies the first event. (A reader that trusts the position sequence's
// last_value before its first use would skip position 1.)
func TestStartsOnANewDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := spec{name: "first", query: allEvents, applier: "c"}
	c := b.client(testConfig("c"), s)
	b.start(c)
	// Let the runner read the empty log before the first append.
	testriver.WaitFor(t, 30*time.Second, "the runner to start", func() (bool, error) {
		st, err := c.StatusOf(b.ctx, "first")
		return err == nil && st.State == projections.StateOK, err
	})
	pos, err := b.appendNotes("first", nil, "A")
	if err != nil {
		t.Fatal(err)
	}
	if pos[0] != 1 {
		t.Fatalf("first position %d, want 1", pos[0])
	}
	if err := c.WaitFor(b.ctx, "first", pos[0]); err != nil {
		t.Fatal(err)
	}
	if got := b.checkView("first", allEvents); len(got) != 1 {
		t.Fatalf("view %v, want position 1", got)
	}
}

// A writer that draws a lower position and commits later is not skipped:
// with the earlier position still in flight and a later one committed, the
// projection does not pass the earlier one; once it commits, both are
// applied, in order.
//
// The runner starts only once the later event has committed: a reader
// waiting at the store's barrier for the held writer queues ahead of new
// writers of its scope, so the later writer could not commit while it
// waits.
func TestOutOfOrderCommitIsNotSkipped(t *testing.T) {
	t.Parallel()
	for _, q := range []struct {
		name  string
		query eventstore.Query
	}{{"all", allEvents}, {"only-a", onlyA}} {
		t.Run(q.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := b.client(testConfig("c"), spec{name: q.name, query: q.query, batch: 10, applier: "c"})
			if _, err := b.appendNotes("before", nil, "A"); err != nil {
				t.Fatal(err)
			}
			drawn, release := make(chan eventstore.Position), make(chan struct{})
			hold := eventstore.HookFunc(func(ctx context.Context, _ pgx.Tx, recs []eventstore.RawRecord) error {
				drawn <- recs[0].Position
				<-release
				return nil
			})
			slow := make(chan error, 1)
			go func() {
				_, err := b.appendNotes("slow", []eventstore.Hook{hold}, "A")
				slow <- err
			}()
			low := <-drawn
			fast, err := b.appendNotes("fast", nil, "A")
			if err != nil {
				close(release)
				t.Fatal(err)
			}
			if fast[0] <= low {
				close(release)
				t.Fatalf("fast position %d not above the held %d", fast[0], low)
			}
			b.start(c)
			// The later event is committed, the earlier is not: the
			// projection must not get past the earlier one.
			wctx, cancel := context.WithTimeout(b.ctx, 500*time.Millisecond)
			err = c.WaitFor(wctx, q.name, fast[0])
			cancel()
			close(release)
			if !errors.Is(err, projections.ErrWaitTimeout) {
				t.Fatalf("WaitFor(%d) while %d is in flight: %v, want a timeout", fast[0], low, err)
			}
			if err := <-slow; err != nil {
				t.Fatal(err)
			}
			if err := c.WaitFor(b.ctx, q.name, fast[0]); err != nil {
				t.Fatal(err)
			}
			if got := b.checkView(q.name, q.query); len(got) != 3 || got[1] != low || got[2] != fast[0] {
				t.Fatalf("view %v, want [1 %d %d]", got, low, fast[0])
			}
		})
	}
}

// Two clients (two processes, say) run the same projection: only one holds
// its lease and applies; when it stops, the other takes over, and no event
// is applied twice or lost.
func TestTwoClientsOneRunner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var appliedA, appliedB atomic.Int64
	a := b.client(testConfig("a"), spec{name: "p", query: allEvents, batch: 20, applier: "a", applied: &appliedA})
	bb := b.client(testConfig("b"), spec{name: "p", query: allEvents, batch: 20, applier: "b", applied: &appliedB})
	b.start(a)
	b.start(bb)

	w := b.startWriters([]eventstore.Hook{dawdle}, "A")
	testriver.WaitFor(t, 30*time.Second, "events to be applied", func() (bool, error) {
		return appliedA.Load()+appliedB.Load() > 500, nil
	})
	// Exactly one applies.
	if appliedA.Load() > 0 && appliedB.Load() > 0 {
		t.Fatalf("both clients applied: a %d, b %d", appliedA.Load(), appliedB.Load())
	}
	leader, other, otherApplied := a, bb, &appliedB
	if appliedB.Load() > 0 {
		leader, other, otherApplied = bb, a, &appliedA
	}
	// The leader stops (a deploy): the other takes over.
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	stopped := time.Now()
	if err := leader.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, 30*time.Second, "the other client to take over", func() (bool, error) {
		return otherApplied.Load() > 0, nil
	})
	t.Logf("taken over %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
	w.halt(t)
	if err := other.WaitFor(b.ctx, "p", b.head()); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", allEvents)
}

// Two runners that both believe they hold the lease (the lease bypassed on
// purpose) race on one projection: the checkpoint's optimistic check lets
// exactly one apply each batch.
func TestRacingRunnersApplyEachBatchOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const events = 3000
	errs := race(events/2, 8, func(i int) error {
		_, err := b.appendNotes(fmt.Sprint("s", i), nil, "A", "B")
		return err
	})
	if err := firstError(errs); err != nil {
		t.Fatal(err)
	}
	head := b.head()
	var applied [4]atomic.Int64
	var wg sync.WaitGroup
	runErrs := make([]error, len(applied))
	for i := range applied {
		c := b.client(testConfig(fmt.Sprint("r", i)), spec{name: "p", query: allEvents, batch: 13, applier: fmt.Sprint("r", i), applied: &applied[i]})
		wg.Go(func() { runErrs[i] = projections.RunUnleased(b.ctx, c, "p", head) })
	}
	wg.Wait()
	if err := firstError(runErrs); err != nil {
		t.Fatal(err)
	}
	got := b.checkView("p", allEvents)
	var total int64
	for i := range applied {
		total += applied[i].Load()
		t.Logf("runner %d applied %d", i, applied[i].Load())
	}
	// Each runner's Apply ran in transactions of which only the winners
	// committed; the view holds each event once.
	if len(got) != events {
		t.Fatalf("view has %d events, want %d", len(got), events)
	}
}

// Reset and rebuild while writers write and the runner runs: the runner
// notices, starts again from the new checkpoint, and the view ends equal
// to the log.
func TestResetAndRebuildUnderWriteLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := spec{name: "p", query: onlyA, batch: 50, applier: "worker"}
	worker := b.client(testConfig("worker"), s)
	b.start(worker)
	// A second, unstarted client: a command line.
	cli := b.client(testConfig("cli"), spec{name: "p", query: onlyA, batch: 50, applier: "cli"})

	w := b.startWriters([]eventstore.Hook{dawdle}, "A", "B")
	w.waitWrites(t, 300)
	if err := worker.Reset(b.ctx, "p", &projections.ResetOpts{By: "test", Reason: "from zero"}); err != nil {
		t.Fatal(err)
	}
	w.waitWrites(t, 600)
	st, err := worker.StatusOf(b.ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastReset == nil || st.LastReset.By != "test" || st.LastReset.Reason != "from zero" {
		t.Fatalf("last reset %+v", st.LastReset)
	}
	// Rebuild from a position in the middle of what it applied, from the
	// command line, while the worker runs it.
	st, err = cli.StatusOf(b.ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	mid := st.Position / 2
	target, err := cli.Rebuild(b.ctx, "p", &projections.RebuildOpts{ResetOpts: projections.ResetOpts{From: mid, By: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := cli.StatusOf(b.ctx, "p"); err != nil || st.Position < target {
		t.Fatalf("after the rebuild to %d: %+v %v", target, st, err)
	}
	w.waitWrites(t, 900)
	if st, err = worker.StatusOf(b.ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := worker.Reset(b.ctx, "p", &projections.ResetOpts{From: st.Position / 3}); err != nil {
		t.Fatal(err)
	}
	w.waitWrites(t, 1200)
	w.halt(t)
	if err := worker.WaitFor(b.ctx, "p", b.head()); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", onlyA)

	// With no worker running, the command line rebuilds by itself.
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := worker.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var progress atomic.Int64
	target, err = cli.Rebuild(b.ctx, "p", &projections.RebuildOpts{Progress: func(projections.Status) { progress.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if target != b.head() {
		t.Fatalf("rebuilt to %d, head %d", target, b.head())
	}
	got := b.checkView("p", onlyA)
	var byCLI int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM test_view WHERE projection = 'p' AND applier = 'cli'`).Scan(&byCLI); err != nil {
		t.Fatal(err)
	}
	if byCLI != len(got) {
		t.Fatalf("the command line applied %d of %d events", byCLI, len(got))
	}
}

// WaitFor under load: every writer waits for its own event in the view,
// through a client that runs the projection (woken by the runner) and
// through one that does not (polling the checkpoint).
func TestWaitForUnderLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	runner := b.client(testConfig("runner"), spec{name: "p", query: onlyA, batch: 100, applier: "runner"})
	b.start(runner)
	remote := b.client(testConfig("web"), spec{name: "p", query: onlyA, applier: "web"})
	errs := race(1500, 24, func(i int) error {
		pos, err := b.appendNotes(fmt.Sprint("s", i), []eventstore.Hook{dawdle}, "B", "A")
		if errors.Is(err, errRolledBack) {
			return nil
		}
		if err != nil {
			return err
		}
		c := runner
		if i%2 == 1 {
			c = remote
		}
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		// Either position will do: the B event is not the projection's,
		// but its position is passed all the same.
		if err := c.WaitFor(ctx, "p", pos[i%2]); err != nil {
			return err
		}
		var n int
		if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM test_view WHERE projection = 'p' AND position = $1`, int64(pos[1])).Scan(&n); err != nil {
			return err
		}
		if i%2 == 1 && n != 1 {
			return fmt.Errorf("writer %d: its event %d is not in the view after WaitFor(%d)", i, pos[1], pos[1])
		}
		return nil
	})
	if err := firstError(errs); err != nil {
		t.Fatal(err)
	}

	// A position no one will write: a typed timeout.
	ctx, cancel := context.WithTimeout(b.ctx, 100*time.Millisecond)
	defer cancel()
	err := remote.WaitFor(ctx, "p", b.head()+1000)
	var te *projections.WaitTimeoutError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || te.Stuck != nil || te.Reached != b.head() {
		t.Fatalf("WaitFor beyond the head: %v (%+v)", err, te)
	}
	if err := remote.WaitFor(b.ctx, "nope", 1); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Fatalf("WaitFor of an unknown projection: %v", err)
	}
}

// An Apply that fails on one event never skips it: the runner narrows the
// failing batch down to that event, applies the ones before it, retries
// with backoff, and its status says where it is stuck and why. An
// operator's skip, recorded, moves it on.
func TestPoisonedEventStuckThenSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	poison := func(_ context.Context, n note) error {
		if n.Body == "poison" {
			return errors.New("cannot take poison")
		}
		return nil
	}
	q := eventstore.NewQuery(eventstore.Types("A", "Garbled"))
	c := b.client(testConfig("c"), spec{name: "p", query: q, batch: 50, applier: "c", fail: poison})
	write := func(body, typ string) eventstore.Position {
		t.Helper()
		res, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprint("s-", rand.Int64()),
			Events: []eventstore.EventData{{Type: typ, Data: []byte(body)}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Records[0].Position
	}
	// Written before the projection starts, so that the poison lands
	// inside a batch.
	var bad, garbled eventstore.Position
	for i := range 30 {
		switch i {
		case 12:
			bad = write("poison", "A")
		case 20:
			garbled = write("x", "Garbled")
		default:
			write("fine", "A")
		}
	}
	last := write("fine", "A")
	b.start(c)

	stuckAt := func(pos eventstore.Position, errText string) {
		t.Helper()
		testriver.WaitFor(t, 30*time.Second, fmt.Sprintf("the projection to be stuck at %d", pos), func() (bool, error) {
			st, err := c.StatusOf(b.ctx, "p")
			return err == nil && st.State == projections.StateStuck && st.FailingPosition == pos && st.Attempts >= 2, err
		})
		st, _ := c.StatusOf(b.ctx, "p")
		if st.Position >= pos || !containsAll(st.LastError, fmt.Sprint(pos), errText) || st.FailingSince.IsZero() || st.NextAttempt.IsZero() {
			t.Fatalf("stuck status %+v", st)
		}
		ctx, cancel := context.WithTimeout(b.ctx, 100*time.Millisecond)
		defer cancel()
		var te *projections.WaitTimeoutError
		if err := c.WaitFor(ctx, "p", last); !errors.As(err, &te) || te.Stuck == nil || te.Stuck.FailingPosition != pos {
			t.Fatalf("WaitFor past a stuck position: %v", err)
		}
	}
	stuckAt(bad, "cannot take poison")
	// Everything before the poison is applied.
	var before int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM test_view WHERE position < $1`, int64(bad)).Scan(&before); err != nil || before != 12 {
		t.Fatalf("%d events before the poison applied, want 12 (%v)", before, err)
	}

	// Skips that make no sense are refused.
	for _, tc := range []struct {
		pos  eventstore.Position
		want error
	}{
		{1, projections.ErrAlreadyApplied},
		{last + 100, projections.ErrInvalidPosition},
	} {
		if _, err := c.Skip(b.ctx, "p", tc.pos, nil); !errors.Is(err, tc.want) {
			t.Errorf("skip %d: %v, want %v", tc.pos, err, tc.want)
		}
	}
	other, err := b.appendNotes("other", nil, "B")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Skip(b.ctx, "p", other[0], nil); !errors.Is(err, projections.ErrInvalidPosition) {
		t.Errorf("skip of an event the projection does not match: %v", err)
	}

	sk, err := c.Skip(b.ctx, "p", bad, &projections.SkipOpts{By: "ops", Reason: "bad data, ticket 42"})
	if err != nil {
		t.Fatal(err)
	}
	if sk.Position != bad || sk.By != "ops" || sk.Reason != "bad data, ticket 42" || !containsAll(sk.Error, "cannot take poison") || sk.EventType != "A" {
		t.Fatalf("skip %+v", sk)
	}
	// Then it sticks at the undecodable event.
	stuckAt(garbled, "garbled bytes")
	if _, err := c.Skip(b.ctx, "p", garbled, &projections.SkipOpts{By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(b.ctx, "p", last); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", q)
	skips, err := c.Skips(b.ctx, "p")
	if err != nil || len(skips) != 2 || skips[0].Position != bad || skips[1].Position != garbled {
		t.Fatalf("skips %+v %v", skips, err)
	}
	st, err := c.StatusOf(b.ctx, "p")
	if err != nil || st.State != projections.StateOK || st.Skipped != 2 || st.LastError != "" {
		t.Fatalf("status after the skips: %+v %v", st, err)
	}

	// A rebuild skips them again.
	if _, err := c.Rebuild(b.ctx, "p", nil); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", q)
}
