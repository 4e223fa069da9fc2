package projections_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/projections"
)

// Three processes share six projections: each ends up running two.
func TestProjectionsSpreadOverProcesses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var specs []spec
	for i := range 6 {
		specs = append(specs, spec{name: fmt.Sprint("p", i), query: allEvents})
	}
	clients := make([]*projections.Client, 3)
	for i := range clients {
		owned := make([]spec, len(specs))
		for j, s := range specs {
			s.applier = fmt.Sprint("c", i)
			owned[j] = s
		}
		clients[i] = b.client(testConfig(fmt.Sprint("c", i)), owned...)
		// One after the other: the first takes everything, and hands
		// back what is above its share as the others arrive.
		b.start(clients[i])
	}
	testriver.WaitFor(t, time.Minute, "two projections per process", func() (bool, error) {
		sts, err := clients[0].Status(b.ctx)
		if err != nil {
			return false, err
		}
		per := map[string]int{}
		for _, st := range sts {
			if !st.Running {
				return false, nil
			}
			per[st.Owner]++
		}
		return per["c0"] == 2 && per["c1"] == 2 && per["c2"] == 2, nil
	})
	if _, err := b.appendNotes("s", nil, "A", "B"); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := clients[2].WaitFor(b.ctx, s.name, b.head()); err != nil {
			t.Fatal(err)
		}
		b.checkView(s.name, allEvents)
	}
}

// When the session holding a lease ends (its process died, or the
// connection broke), another process takes the projection over, and the
// process that lost it stops its runner and later competes again. Nothing
// is applied twice, even though the runner that lost its lease may still
// be finishing a batch when the new one starts.
func TestLeaseLostToAnotherProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var applied [2]atomic.Int64
	cs := make([]*projections.Client, 2)
	for i := range cs {
		cs[i] = b.client(testConfig(fmt.Sprint("c", i)), spec{name: "p", query: allEvents, batch: 5, applier: fmt.Sprint("c", i), applied: &applied[i]})
		b.start(cs[i])
	}
	w := b.startWriters(nil, "A")
	// holder is the backend holding the lease, and the owner its status
	// names.
	holder := func() (pid int, owner string, err error) {
		err = b.pool.QueryRow(b.ctx, `SELECT coalesce(max(pid), 0) FROM pg_locks
			WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::int8 = $1
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, projections.LeaseClass).Scan(&pid)
		if err != nil || pid == 0 {
			return 0, "", err
		}
		st, err := cs[0].StatusOf(b.ctx, "p")
		return pid, st.Owner, err
	}
	var pid int
	var owner string
	testriver.WaitFor(t, time.Minute, "a holder", func() (ok bool, err error) {
		pid, owner, err = holder()
		return pid != 0, err
	})
	for round := range 4 {
		var ok bool
		if err := b.pool.QueryRow(b.ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("round %d: terminating the lease's session: %v %v", round, ok, err)
		}
		lost, before := time.Now(), owner
		old := pid
		testriver.WaitFor(t, time.Minute, "another session to hold the lease", func() (ok bool, err error) {
			pid, owner, err = holder()
			return pid != 0 && pid != old, err
		})
		t.Logf("round %d: %s lost the lease; %s holds it %s later", round, before, owner, time.Since(lost).Round(time.Millisecond))
	}
	w.halt(t)
	if err := cs[0].WaitFor(b.ctx, "p", b.head()); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", allEvents)
	t.Logf("applied by c0 %d, by c1 %d", applied[0].Load(), applied[1].Load())
}

// Stop hands the lease back at once and waits for the runner; a runner
// whose Apply hangs is cancelled when Stop's context ends.
func TestStopCancelsAHangingApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	entered := make(chan struct{}, 1)
	c := b.client(testConfig("c"), spec{name: "p", query: allEvents, applier: "c", fail: func(ctx context.Context, _ note) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // hangs until the runner's work is cancelled
		return ctx.Err()
	}})
	if _, err := b.appendNotes("s", nil, "A"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithTimeout(b.ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.checkView("p", eventstore.NewQuery(eventstore.Types("none"))); len(got) != 0 {
		t.Fatalf("view %v after a cancelled apply", got)
	}
}

// settles waits until each projection in owners runs in the process
// named, then checks that they all still run there over ten lease cycles:
// a process that hands back a projection no other process can run stops
// it within one, and a spreading that passes leases back and forth moves
// one within a few.
func settles(t *testing.T, b *bundle, c *projections.Client, owners map[string]string) {
	t.Helper()
	settled := func() (bool, error) {
		for n, owner := range owners {
			st, err := c.StatusOf(b.ctx, n)
			if err != nil || !st.Running || st.Owner != owner {
				return false, err
			}
		}
		return true, nil
	}
	testriver.WaitFor(t, time.Minute, fmt.Sprint("projections running in ", owners), settled)
	deadline := time.Now().Add(10 * testConfig("").LeaseInterval)
	for time.Now().Before(deadline) {
		ok, err := settled()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			sts, _ := c.Status(b.ctx)
			t.Fatalf("projections moved or stopped after they settled in %v: %+v", owners, sts)
		}
	}
}

// Processes need not register the same projections (two services on one
// database, two clients in one process, a rolling deploy that adds one):
// each projection runs in one of the processes that register it, and the
// spreading never hands a projection to a process that cannot run it.
func TestProjectionsRunWhereverTheyAreRegistered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mk := func(owner string, names ...string) *projections.Client {
		specs := make([]spec, len(names))
		for i, n := range names {
			specs[i] = spec{name: n, query: allEvents, applier: owner}
		}
		return b.client(testConfig(owner), specs...)
	}
	// A runs three, B one of them and one of its own, C one of its own.
	ca, cb, cc := mk("A", "a1", "a2", "ab"), mk("B", "ab", "b1"), mk("C", "c1")
	for _, c := range []*projections.Client{ca, cb, cc} {
		b.start(c)
	}
	// Two each for A and B: A, which can run three, hands "ab" to B.
	// (Status from a client that registers all of them and runs none.)
	observer := mk("observer", "a1", "a2", "ab", "b1", "c1")
	settles(t, b, observer, map[string]string{"a1": "A", "a2": "A", "ab": "B", "b1": "B", "c1": "C"})
	pos, err := b.appendNotes("s", nil, "A", "B")
	if err != nil {
		t.Fatal(err)
	}
	for c, names := range map[*projections.Client][]string{ca: {"a1", "a2", "ab"}, cb: {"b1"}, cc: {"c1"}} {
		for _, n := range names {
			if err := c.WaitFor(b.ctx, n, pos[1]); err != nil {
				t.Fatal(err)
			}
			b.checkView(n, allEvents)
		}
	}
}

// Two names whose lease keys collide share one lease: both run, in the
// process that holds it.
func TestProjectionsWithOneLeaseKeyBothRun(t *testing.T) {
	t.Parallel()
	x, y := "p2308", "p571002"
	if projections.LeaseKey(x) != projections.LeaseKey(y) {
		t.Fatalf("%s and %s no longer collide: pick two names that do", x, y)
	}
	b := setup(t)
	cs := make([]*projections.Client, 2)
	for i := range cs {
		owner := fmt.Sprint("c", i)
		cs[i] = b.client(testConfig(owner), spec{name: x, query: allEvents, applier: owner}, spec{name: y, query: allEvents, applier: owner},
			spec{name: "other", query: allEvents, applier: owner})
		b.start(cs[i])
	}
	// One lease each: x and y in one process, "other" in the other.
	testriver.WaitFor(t, time.Minute, "the leases spread", func() (bool, error) {
		sx, err := cs[0].StatusOf(b.ctx, x)
		if err != nil {
			return false, err
		}
		so, err := cs[0].StatusOf(b.ctx, "other")
		return err == nil && sx.Running && so.Running && sx.Owner != "" && so.Owner != "" && sx.Owner != so.Owner, err
	})
	sx, err := cs[0].StatusOf(b.ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	so, err := cs[0].StatusOf(b.ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	settles(t, b, cs[0], map[string]string{x: sx.Owner, y: sx.Owner, "other": so.Owner})
	pos, err := b.appendNotes("s", nil, "A")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{x, y, "other"} {
		if err := cs[1].WaitFor(b.ctx, n, pos[0]); err != nil {
			t.Fatal(err)
		}
		b.checkView(n, allEvents)
	}
}
