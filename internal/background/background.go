// Package background runs one goroutine at a time for a component that
// works in the background between its Start and its Stop: the command
// ledger's cleaner and the ordered effects' sequencer.
package background

import (
	"context"
	"errors"
	"sync"
)

// ErrRunning is returned by Start while the goroutine runs.
var ErrRunning = errors.New("already running")

// Goroutine is the life cycle of one background goroutine. The zero value
// is stopped and ready to start.
type Goroutine struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs fn in a goroutine with a context that Stop cancels (and ctx's
// end too: pass context.WithoutCancel(ctx) for a goroutine that must
// outlive a start hook's context). It returns ErrRunning, and runs
// nothing, until an earlier fn has returned.
func (g *Goroutine) Start(ctx context.Context, fn func(ctx context.Context)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	g.cancel, g.done = cancel, done
	go func() {
		defer close(done)
		defer func() {
			// Stopped only once fn has returned: never two at once.
			g.mu.Lock()
			if g.done == done {
				g.cancel, g.done = nil, nil
			}
			g.mu.Unlock()
		}()
		fn(ctx)
	}()
	return nil
}

// Stop cancels the goroutine's context and waits until fn has returned,
// or until ctx ends (then it returns ctx's error and fn ends later on its
// own). Stopping a goroutine that does not run does nothing; once fn has
// returned, Start may run another.
func (g *Goroutine) Stop(ctx context.Context) error {
	g.mu.Lock()
	cancel, done := g.cancel, g.done
	g.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Running reports whether a started fn has not returned yet.
func (g *Goroutine) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cancel != nil
}
