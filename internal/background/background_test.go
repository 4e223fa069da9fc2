package background_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factos-go/factos/internal/background"
)

// Start and Stop raced from many goroutines: never two bodies at once,
// every started body ends by a Stop, and Stop returns only once the body
// it stopped has returned.
func TestStartStopRace(t *testing.T) {
	t.Parallel()
	var g background.Goroutine
	var running, overlaps, started, ended atomic.Int64
	body := func(ctx context.Context) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		started.Add(1)
		<-ctx.Done()
		running.Add(-1)
		ended.Add(1)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				if err := g.Start(context.Background(), body); err != nil && !errors.Is(err, background.ErrRunning) {
					t.Error(err)
				}
				if err := g.Stop(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if overlaps.Load() != 0 || started.Load() != ended.Load() || started.Load() == 0 || g.Running() {
		t.Fatalf("overlaps %d, started %d, ended %d, running %v", overlaps.Load(), started.Load(), ended.Load(), g.Running())
	}
}

// Stop gives up at its context's end when the body does not return, and
// the body ends later on its own.
func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	var g background.Goroutine
	release, returned := make(chan struct{}), make(chan struct{})
	if err := g.Start(context.Background(), func(context.Context) { <-release; close(returned) }); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background(), func(context.Context) {}); !errors.Is(err, background.ErrRunning) {
		t.Fatalf("second Start: %v, want ErrRunning", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want DeadlineExceeded", err)
	}
	close(release)
	<-returned
}
