package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
)

// progress is what a process knows of one projection's checkpoint. A local
// runner publishes every checkpoint it commits; while nothing runs the
// projection here and someone waits, one poller per projection reads the
// checkpoint row instead, however many wait.
type progress struct {
	mu      sync.Mutex
	pos     eventstore.Position
	known   bool
	changed chan struct{}
	local   bool // a runner of this process holds the lease
	waiters int
	polling bool
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

func (p *progress) publish(pos eventstore.Position) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known && p.pos == pos {
		return
	}
	p.pos, p.known = pos, true
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) setLocal(local bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.local = local
	// Wake the waiters so that they start the poller if the runner left.
	close(p.changed)
	p.changed = make(chan struct{})
}

// WaitFor returns once the projection has applied position pos: its
// checkpoint has reached pos, so the view's state includes every event it
// applies at or below pos (events it does not match, and positions an
// operator skipped, count as passed). Pass a position from a dispatch's
// result (Result.Records) to read your own writes.
//
// It waits on the runner itself when the projection runs in this process,
// and otherwise reads the checkpoint every WaitPollInterval (one query per
// projection however many callers wait); either way it reads the
// checkpoint row once more before it returns, since a reset elsewhere may
// have moved it back since this process last saw it. When ctx has no deadline,
// WaitTimeout bounds the wait. When the deadline passes first it returns a
// *WaitTimeoutError (errors.Is ErrWaitTimeout), which says whether the
// projection is stuck and why.
func (c *Client) WaitFor(ctx context.Context, name string, pos eventstore.Position) error {
	if _, err := c.reg.lookup(name); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.WaitTimeout)
		defer cancel()
	}
	return c.wait(ctx, name, pos)
}

// wait is WaitFor without its default timeout.
func (c *Client) wait(ctx context.Context, name string, pos eventstore.Position) error {
	p := c.progress[name]
	p.mu.Lock()
	p.waiters++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		cur, known, local, changed := p.pos, p.known, p.local, p.changed
		if !local && !p.polling {
			p.polling = true
			go c.pollCheckpoint(name, p)
		}
		p.mu.Unlock()
		if known && cur >= pos {
			// Confirm with the row itself: what this process saw may
			// predate a reset that moved the checkpoint back (an operator,
			// another process), and a WaitFor that returned on it would
			// let the caller read a view that lacks its write.
			row, err := c.readCheckpoint(ctx, name)
			if err == nil && row >= pos {
				return nil
			}
			if err == nil {
				p.publish(row)
				continue
			}
			if ctx.Err() == nil {
				c.cfg.Logger.DebugContext(ctx, "projections: error reading a checkpoint", "projection", name, "error", err)
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("projections: waiting for %s to apply position %d: %w", name, pos, ctx.Err())
			}
			te := &WaitTimeoutError{Projection: name, Position: pos, Reached: cur}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if st, err := c.status(sctx, []string{name}); err == nil && len(st) == 1 {
				te.Reached = st[0].Position
				if st[0].State == StateStuck {
					te.Stuck = &st[0]
				}
			}
			return te
		}
	}
}

const checkpointSQL = `SELECT position FROM factos_projections WHERE name = $1`

// readCheckpoint reads a projection's checkpoint row: 0 if it never ran.
func (c *Client) readCheckpoint(ctx context.Context, name string) (eventstore.Position, error) {
	var pos int64
	err := c.pool.QueryRow(ctx, checkpointSQL, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return eventstore.Position(pos), err
}

// pollCheckpoint reads the checkpoint row while someone waits and no local
// runner publishes.
func (c *Client) pollCheckpoint(name string, p *progress) {
	ctx := context.Background()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		<-timer.C
		p.mu.Lock()
		if p.waiters == 0 || p.local {
			p.polling = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pos, err := c.readCheckpoint(qctx, name)
		cancel()
		if err == nil {
			p.publish(pos)
		} else {
			c.cfg.Logger.Debug("projections: error reading a checkpoint", "projection", name, "error", err)
		}
		timer.Reset(c.cfg.WaitPollInterval)
	}
}
