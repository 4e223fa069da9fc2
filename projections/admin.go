package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
)

// Operators' actions. Each runs in one transaction that first locks the
// projection's checkpoint row, the row every batch also locks first: an
// action waits for a batch in flight to commit, and a batch that started
// before the action commits finds a new generation and rolls back. Either
// way no runner writes to the view with a checkpoint an action replaced.

const headSQL = `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM factos_events_position_seq`

// ResetOpts say where a reset or rebuild starts and who asked for it.
type ResetOpts struct {
	// From is the position to start again after: 0 to rebuild from the
	// first event. It may not be above the checkpoint: the events in
	// between were never applied, and moving past them would skip them
	// (ErrInvalidPosition; Skip is the way to leave an event out).
	// Default: 0.
	From eventstore.Position
	// By and Reason are recorded with the reset. Default By: the client's
	// Config.Owner.
	By     string
	Reason string
}

// Reset moves a projection's checkpoint to opts.From and calls its Reset
// function to remove what the view derived from the events after it, in
// one transaction. It returns at once; the runner (in whichever process
// holds the lease) notices within a poll interval and rebuilds from there.
// Skipped positions stay skipped.
func (c *Client) Reset(ctx context.Context, name string, opts *ResetOpts) error {
	e, err := c.reg.lookup(name)
	if err != nil {
		return err
	}
	if e.reset == nil {
		return fmt.Errorf("projections: %s: %w", name, ErrNoReset)
	}
	o := ResetOpts{}
	if opts != nil {
		o = *opts
	}
	if o.From < 0 {
		return fmt.Errorf("projections: %s: %w: from %d is negative", name, ErrInvalidPosition, o.From)
	}
	if o.By == "" {
		o.By = c.cfg.Owner
	}
	err = c.inRowTx(ctx, name, func(tx pgx.Tx, row rowState) error {
		if o.From > row.position {
			return fmt.Errorf("projections: %s: %w: from %d is beyond the checkpoint %d: a reset goes back, never past events not yet applied", name, ErrInvalidPosition, o.From, row.position)
		}
		if err := e.reset(ctx, tx, o.From); err != nil {
			return fmt.Errorf("projections: %s: error resetting the view: %w", name, err)
		}
		_, err := tx.Exec(ctx, `UPDATE factos_projections SET position = $2, generation = generation + 1, applied = 0,
			attempts = 0, failing_position = NULL, failing_since = NULL, last_error = NULL, next_attempt_at = NULL,
			reset_at = clock_timestamp(), reset_from = $2, reset_by = $3, reset_reason = $4, updated_at = clock_timestamp()
			WHERE name = $1`, name, int64(o.From), o.By, o.Reason)
		return err
	})
	if err == nil {
		// Waiters in this process must not go by a position from before.
		c.progress[name].publish(o.From)
	}
	return err
}

// RebuildOpts configure a rebuild.
type RebuildOpts struct {
	ResetOpts
	// Progress, if set, is called about once a second with the
	// projection's status while the rebuild runs.
	Progress func(Status)
}

// Rebuild resets a projection (see Reset) and returns once it has caught
// up with the log's head as of the reset, or when ctx ends. On a started
// client it waits for the runner, wherever it runs. On a client that is
// not started (a command line) it runs the projection itself while no
// other process holds the lease, and otherwise waits for the process that
// does. It returns the position it caught up to.
func (c *Client) Rebuild(ctx context.Context, name string, opts *RebuildOpts) (eventstore.Position, error) {
	o := RebuildOpts{}
	if opts != nil {
		o = *opts
	}
	if err := c.Reset(ctx, name, &o.ResetOpts); err != nil {
		return 0, err
	}
	var head int64
	if err := c.pool.QueryRow(ctx, headSQL).Scan(&head); err != nil {
		return 0, fmt.Errorf("projections: error reading the log's head: %w", err)
	}
	target := eventstore.Position(head)
	if o.Progress != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				case <-tick.C:
					if st, err := c.StatusOf(ctx, name); err == nil {
						o.Progress(*st)
					}
				}
			}
		}()
	}
	return target, c.catchUp(ctx, name, target)
}

// catchUp returns once name's checkpoint reaches target. While this
// client's lease loop runs it waits for the runner, wherever it runs;
// otherwise it runs the projection itself whenever the lease is free.
func (c *Client) catchUp(ctx context.Context, name string, target eventstore.Position) error {
	e := c.reg.entries[name]
	for {
		if !c.running() {
			ran, err := c.runOnce(ctx, e, target)
			if err != nil || ran {
				return err
			}
		}
		// Another process runs it: wait for it, and look again now and
		// then in case it went away, or this client stopped.
		wctx, cancel := context.WithTimeout(ctx, c.cfg.LeaseInterval)
		err := c.wait(wctx, name, target)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

// runOnce runs e's runner in this process until target, if its lease is
// free. It reports whether it ran.
func (c *Client) runOnce(ctx context.Context, e *entry, target eventstore.Position) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, c.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("projections: error connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // ends the session and its lease
	}()
	var ok bool
	if err := conn.QueryRow(ctx, tryLockSQL, leaseClass, e.key).Scan(&ok); err != nil || !ok {
		return false, err
	}
	p := c.progress[e.name]
	p.setLocal(true)
	defer p.setLocal(false)
	if err := c.newRunner(e, nil).run(ctx, nil, target); err != nil {
		return true, err
	}
	return true, ctx.Err()
}

// SkipOpts say who skips a position and why.
type SkipOpts struct {
	// By and Reason are recorded with the skip. Default By: the client's
	// Config.Owner.
	By     string
	Reason string
}

// Skip is a skipped position as recorded.
type Skip struct {
	Projection string              `json:"projection"`
	Position   eventstore.Position `json:"position"`
	EventID    string              `json:"event_id"`
	EventType  string              `json:"event_type"`
	// Error is the error the projection was stuck with at this position
	// when it was skipped, if it was.
	Error  string    `json:"error,omitempty"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Skip tells the projection never to apply the event at pos: the way past
// an event its Apply cannot take. The position must hold a committed event
// that the projection's query matches and that it has not passed yet; a
// projection stuck there moves on within a poll interval. The skip is
// recorded, with the error the projection was stuck with, and kept: a
// rebuild skips the event again. Skipping a position twice returns the
// first record.
func (c *Client) Skip(ctx context.Context, name string, pos eventstore.Position, opts *SkipOpts) (*Skip, error) {
	e, err := c.reg.lookup(name)
	if err != nil {
		return nil, err
	}
	o := SkipOpts{}
	if opts != nil {
		o = *opts
	}
	if o.By == "" {
		o.By = c.cfg.Owner
	}
	var out *Skip
	err = c.inRowTx(ctx, name, func(tx pgx.Tx, row rowState) error {
		if pos <= row.position {
			return fmt.Errorf("projections: %s: %w: %d (the checkpoint is %d)", name, ErrAlreadyApplied, pos, row.position)
		}
		var id, typ string
		var tags []string
		err := tx.QueryRow(ctx, `SELECT id::text, type, tags FROM factos_events WHERE position = $1`, int64(pos)).Scan(&id, &typ, &tags)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("projections: %s: %w: no committed event at %d", name, ErrInvalidPosition, pos)
		} else if err != nil {
			return err
		}
		if !e.query.Matches(typ, tags) {
			return fmt.Errorf("projections: %s: %w: the event at %d (%s) does not match the projection's query %s", name, ErrInvalidPosition, pos, typ, e.query)
		}
		var stuckWith *string
		if row.failingPosition == pos {
			stuckWith = &row.lastError
		}
		tag, err := tx.Exec(ctx, `INSERT INTO factos_projection_skips (projection, position, event_id, event_type, error, skipped_by, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (projection, position) DO NOTHING`,
			name, int64(pos), id, typ, stuckWith, o.By, o.Reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			// A new generation wakes a runner that backs off at once.
			if _, err := tx.Exec(ctx, `UPDATE factos_projections SET generation = generation + 1, updated_at = clock_timestamp() WHERE name = $1`, name); err != nil {
				return err
			}
		}
		skips, err := c.skips(ctx, tx, name, pos)
		if err == nil && len(skips) == 1 {
			out = &skips[0]
		}
		return err
	})
	return out, err
}

// Skips lists the positions skipped in a projection, in position order.
func (c *Client) Skips(ctx context.Context, name string) ([]Skip, error) {
	if _, err := c.reg.lookup(name); err != nil {
		return nil, err
	}
	return c.skips(ctx, c.pool, name, 0)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// skips lists the skips of name, or the one at pos when pos > 0.
func (c *Client) skips(ctx context.Context, q querier, name string, pos eventstore.Position) ([]Skip, error) {
	rows, err := q.Query(ctx, `SELECT projection, position, event_id::text, event_type, coalesce(error, ''), skipped_by, reason, skipped_at
		FROM factos_projection_skips WHERE projection = $1 AND ($2 = 0 OR position = $2) ORDER BY position`, name, int64(pos))
	if err != nil {
		return nil, fmt.Errorf("projections: error reading skips: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Skip, error) {
		var s Skip
		var p int64
		err := row.Scan(&s.Projection, &p, &s.EventID, &s.EventType, &s.Error, &s.By, &s.Reason, &s.At)
		s.Position = eventstore.Position(p)
		return s, err
	})
}

// rowState is a checkpoint row as an action reads it.
type rowState struct {
	position        eventstore.Position
	failingPosition eventstore.Position
	lastError       string
}

// inRowTx runs f in a transaction holding the lock of name's checkpoint
// row, creating the row if the projection never ran.
func (c *Client) inRowTx(ctx context.Context, name string, f func(pgx.Tx, rowState) error) (err error) {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("projections: error beginning a transaction: %w", err)
	}
	defer func() {
		if err != nil {
			rollback(ctx, tx)
		}
	}()
	if _, err := tx.Exec(ctx, ensureSQL, name); err != nil {
		return fmt.Errorf("projections: error creating the checkpoint row: %w", err)
	}
	var row rowState
	var pos, failing int64
	if err := tx.QueryRow(ctx, `SELECT position, coalesce(failing_position, 0), coalesce(last_error, '') FROM factos_projections WHERE name = $1 FOR UPDATE`, name).
		Scan(&pos, &failing, &row.lastError); err != nil {
		return fmt.Errorf("projections: error locking the checkpoint row: %w", err)
	}
	row.position, row.failingPosition = eventstore.Position(pos), eventstore.Position(failing)
	if err := f(tx, row); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("projections: error committing: %w", err)
	}
	return nil
}
