package projections

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
)

// Client runs an application's projections and answers questions about
// them. Start runs them (each in the one process that holds its lease);
// WaitFor, Status, Reset, Rebuild and Skip work on a started client or
// not, so that a web process or a command line can use them without
// running anything.
type Client struct {
	store    *eventstore.Store
	pool     *pgxpool.Pool
	reg      *Registry
	cfg      *Config
	watcher  *watcher
	progress map[string]*progress

	// The lease loop of the last Start, if any.
	mu     sync.Mutex
	stop   chan struct{}
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has stopped every runner
}

// New returns a client for the projections in reg, reading the log
// through store (whose pool also holds the checkpoints). The registry must
// not change afterwards. The schema must be migrated (see the migrations
// package).
func New(store *eventstore.Store, reg *Registry, cfg *Config) (*Client, error) {
	if store == nil || reg == nil {
		return nil, errors.New("projections: store and registry are required")
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	cl := &Client{store: store, pool: store.Pool(), reg: reg, cfg: c, progress: map[string]*progress{}}
	cl.watcher = newWatcher(cl.pool, c.PollInterval, c.Logger)
	for _, n := range reg.order {
		cl.progress[n] = newProgress()
	}
	c.Metrics.attach(cl)
	return cl, nil
}

// Registry is the client's registry.
func (c *Client) Registry() *Registry { return c.reg }

// Start runs the projections until Stop is called or ctx ends (which
// stops them at once, like River's Client.Start: pass a context that lives
// as long as the process, not a start-up deadline). It returns at once;
// the runners start as their leases are taken, within LeaseInterval. A
// client can be started again once Stop has returned or ctx has ended.
// A client with no projections starts nothing.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runningLocked() {
		return errors.New("projections: client already started")
	}
	if len(c.reg.order) == 0 {
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c.stop, c.cancel, c.done = make(chan struct{}), cancel, done
	l, stop := newLeases(c), c.stop
	go func() {
		defer close(done)
		// The watcher lives until the lease loop has stopped every runner.
		watchCtx, stopWatch := context.WithCancel(runCtx)
		var wg sync.WaitGroup
		wg.Go(func() { c.watcher.run(watchCtx) })
		l.run(runCtx, stop)
		stopWatch()
		wg.Wait()
		cancel()
	}()
	return nil
}

// runningLocked reports whether the lease loop of a Start still runs; c.mu
// is held. A loop whose context ended has stopped on its own: a Rebuild
// then runs the projection itself, and Start may run it again.
func (c *Client) runningLocked() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// running is runningLocked for a caller that does not hold c.mu.
func (c *Client) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

// Stop stops the runners after their current batch and releases their
// leases, so that another process takes over at once. When ctx ends first
// it cancels the batches in flight (they roll back, and are applied again
// by the next runner) and waits for the runners to end.
func (c *Client) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.runningLocked() {
		c.mu.Unlock()
		return nil
	}
	stop, done, cancel := c.stop, c.done, c.cancel
	select {
	case <-stop:
	default:
		close(stop)
	}
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		cancel()
		<-done
	}
	cancel()
	return nil
}
