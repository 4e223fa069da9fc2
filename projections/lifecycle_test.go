package projections_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/projections"
)

// A client that is not started (a command line) rebuilds a projection
// itself; on a log where nothing was ever appended the rebuild is caught up
// at once.
func TestRebuildOnAnEmptyLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.client(testConfig("cli"), spec{name: "p", query: allEvents, applier: "cli"})
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	pos, err := c.Rebuild(ctx, "p", nil)
	if err != nil || pos != 0 {
		t.Fatalf("Rebuild on an empty log: %d, %v; want 0, nil", pos, err)
	}
}

// A client runs again after Stop, and after the context of its Start
// ended; while it does not run, a Rebuild runs the projection itself
// instead of waiting for a runner that will not come.
func TestClientStartsAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, c *projections.Client, cancel context.CancelFunc)
	}{
		{"stopped", func(t *testing.T, c *projections.Client, _ context.CancelFunc) {
			if err := c.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"context ended", func(t *testing.T, c *projections.Client, cancel context.CancelFunc) {
			cancel()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := b.client(testConfig("c"), spec{name: "p", query: allEvents, applier: "c"})
			for round := range 3 {
				ctx, cancel := context.WithCancel(context.Background())
				if err := c.Start(ctx); err != nil {
					cancel()
					t.Fatalf("round %d: %v", round, err)
				}
				if err := c.Start(ctx); err == nil {
					t.Fatalf("round %d: a second Start of a running client succeeded", round)
				}
				pos, err := b.appendNotes("s", nil, "A")
				if err != nil {
					t.Fatal(err)
				}
				if err := c.WaitFor(b.ctx, "p", pos[0]); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				tc.end(t, c, cancel)
				cancel()
				// Not running any more: the rebuild runs it here, and
				// returns once it has caught up.
				rctx, rcancel := context.WithTimeout(b.ctx, 30*time.Second)
				got, err := c.Rebuild(rctx, "p", nil)
				rcancel()
				if err != nil || got != b.head() {
					t.Fatalf("round %d: Rebuild on a client that no longer runs: %d, %v; want %d", round, got, err, b.head())
				}
				b.checkView("p", allEvents)
			}
			// Stop on a client that no longer runs does nothing.
			if err := c.Stop(b.ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// WaitFor never returns on a checkpoint that a reset has since moved back,
// even one made by another process after this one saw the checkpoint pass:
// a caller that reads its own writes then finds them in the view.
func TestWaitForAfterAResetElsewhere(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := spec{name: "p", query: allEvents, applier: "runner"}
	runner := b.client(testConfig("runner"), s)
	web := b.client(testConfig("web"), s) // reads its writes; runs nothing
	operator := b.client(testConfig("operator"), s)
	b.start(runner)
	pos, err := b.appendNotes("s", nil, "A", "A", "A")
	if err != nil {
		t.Fatal(err)
	}
	last := pos[len(pos)-1]
	if err := web.WaitFor(b.ctx, "p", last); err != nil {
		t.Fatal(err)
	}
	if err := runner.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := operator.Reset(b.ctx, "p", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 300*time.Millisecond)
	defer cancel()
	if err := web.WaitFor(ctx, "p", last); !errors.Is(err, projections.ErrWaitTimeout) {
		t.Fatalf("WaitFor after a reset, with nothing running the projection: %v, want a timeout", err)
	}
	// And the runner's own process, which published the checkpoint
	// before the reset, does not trust it either.
	if err := runner.WaitFor(ctx, "p", last); !errors.Is(err, projections.ErrWaitTimeout) {
		t.Fatalf("WaitFor in the former runner's process after a reset: %v, want a timeout", err)
	}
	b.start(web)
	if err := web.WaitFor(b.ctx, "p", last); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", allEvents)
}

// An Apply that panics fails its batch like an error: the process goes
// on, the projection shows stuck at the event with the panic's value, and
// it moves on once the cause is gone.
func TestApplyPanicIsAFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var broken atomic.Bool
	broken.Store(true)
	c := b.client(testConfig("c"), spec{name: "p", query: allEvents, applier: "c", fail: func(_ context.Context, n note) error {
		if n.Type == "Bad" && broken.Load() {
			panic("apply bug")
		}
		return nil
	}}, spec{name: "healthy", query: allEvents, applier: "c"})
	b.start(c)
	pos, err := b.appendNotes("s", nil, "A", "Bad", "A")
	if err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, 30*time.Second, "the projection stuck at the panicking event", func() (bool, error) {
		st, err := c.StatusOf(b.ctx, "p")
		return err == nil && st.State == projections.StateStuck && st.FailingPosition == pos[1] && st.Attempts >= 2, err
	})
	st, err := c.StatusOf(b.ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if st.Position != pos[0] || !strings.Contains(st.LastError, "panic: apply bug") {
		t.Fatalf("stuck status %+v: want the checkpoint at %d and the panic in the error", st, pos[0])
	}
	// The other projection of the process is unaffected.
	if err := c.WaitFor(b.ctx, "healthy", pos[2]); err != nil {
		t.Fatal(err)
	}
	broken.Store(false)
	if err := c.WaitFor(b.ctx, "p", pos[2]); err != nil {
		t.Fatal(err)
	}
	b.checkView("p", allEvents)
	b.checkView("healthy", eventstore.AllEvents())
}
