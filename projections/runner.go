package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
)

// A runner applies one projection while its process holds the
// projection's lease. It reads the log after its checkpoint with
// Store.ReadAfter, page after page, and applies each page in a transaction
// that first locks the checkpoint row and checks that it still holds the
// checkpoint the page was read after, and then moves it. A runner that
// lost its lease without knowing it, or one whose projection an operator
// reset meanwhile, finds another checkpoint there, rolls back and rereads:
// no batch is ever applied twice or on top of a stale view.

// errStale: the checkpoint row changed under the runner (another runner, a
// reset or a skip); the runner rereads it.
var errStale = errors.New("checkpoint moved")

const (
	// ensureSQL creates the checkpoint row of a projection never run.
	ensureSQL = `INSERT INTO factos_projections (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`

	claimSQL = `UPDATE factos_projections SET owner = $2, owner_since = clock_timestamp() WHERE name = $1
		RETURNING position, generation, attempts, coalesce(failing_position, 0)`

	rowSQL = `SELECT position, generation, attempts, coalesce(failing_position, 0) FROM factos_projections WHERE name = $1`

	lockRowSQL = `SELECT position, generation FROM factos_projections WHERE name = $1 FOR UPDATE`

	skipsSQL = `SELECT coalesce(array_agg(position), '{}') FROM factos_projection_skips
		WHERE projection = $1 AND position > $2 AND position <= $3`

	// advanceSQL moves the checkpoint, conditionally on the one the runner
	// read, and clears any failure.
	advanceSQL = `UPDATE factos_projections SET position = $4, applied = applied + $5, attempts = 0,
		failing_position = NULL, failing_since = NULL, last_error = NULL, next_attempt_at = NULL,
		updated_at = clock_timestamp()
		WHERE name = $1 AND position = $2 AND generation = $3`

	// failSQL records a failed attempt. The count restarts when the
	// failure moves to another position.
	failSQL = `UPDATE factos_projections SET
		attempts = CASE WHEN failing_position IS NOT DISTINCT FROM $4 THEN attempts + 1 ELSE 1 END,
		failing_since = CASE WHEN failing_position IS NOT DISTINCT FROM $4 AND failing_since IS NOT NULL
			THEN failing_since ELSE clock_timestamp() END,
		failing_position = $4, last_error = $5, next_attempt_at = clock_timestamp() + $6::interval,
		updated_at = clock_timestamp()
		WHERE name = $1 AND position = $2 AND generation = $3
		RETURNING attempts`
)

type runner struct {
	c    *Client
	e    *entry
	prog *progress
	// wake, when set, is the process's watcher; a runner without one (a
	// rebuild from a command line) polls on its own.
	wake *watcher

	batch int
	// The checkpoint row as last read or written.
	pos eventstore.Position
	gen int64
	// control is the watcher's control sum when the row was last read.
	control int64
	// attempts failed in a row at failingPos (0: reading failed).
	attempts   int
	failingPos eventstore.Position
	// isolateUntil: after a batch failed, pages of one event until the
	// checkpoint passes the batch's last position, to find the event that
	// fails.
	isolateUntil eventstore.Position
}

func (c *Client) newRunner(e *entry, w *watcher) *runner {
	b := e.batchSize
	if b == 0 {
		b = c.cfg.BatchSize
	}
	return &runner{c: c, e: e, prog: c.progress[e.name], wake: w, batch: b}
}

// runForever is run's until for a runner that runs until told to stop.
const runForever eventstore.Position = -1

// run applies the projection until stop is closed or ctx ends, or, unless
// until is runForever, until the checkpoint reaches until (at once when it
// already has: a rebuild of an empty log). It returns nil when told to
// stop or done.
func (r *runner) run(ctx context.Context, stop <-chan struct{}, until eventstore.Position) error {
	log := r.c.cfg.Logger.With("projection", r.e.name)
	for {
		err := r.claim(ctx)
		if err == nil {
			break
		}
		log.WarnContext(ctx, "projections: cannot read the checkpoint; retrying", "error", err)
		if !r.sleep(ctx, stop, r.c.cfg.RetryMin) {
			return nil
		}
	}
	log.InfoContext(ctx, "projections: running", "checkpoint", int64(r.pos), "owner", r.c.cfg.Owner)
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		if until != runForever && r.pos >= until {
			return nil
		}
		if r.wake != nil {
			if snap, ok, _ := r.wake.snapshot(); ok && snap.control != r.control {
				// A reset or skip somewhere: reread the row first.
				if err := r.reload(ctx, snap.control); err != nil {
					log.WarnContext(ctx, "projections: cannot read the checkpoint", "error", err)
					r.sleep(ctx, stop, r.c.cfg.RetryMin)
					continue
				}
			}
		}
		limit := r.batch
		if r.pos < r.isolateUntil {
			limit = 1
		}
		page, err := r.c.store.ReadAfter(ctx, r.pos, &eventstore.ReadAfterOpts{Query: &r.e.query, Limit: limit})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.c.cfg.Metrics.failed(r.e.name, "read")
			r.fail(ctx, log, 0, fmt.Errorf("error reading the log after %d: %w", r.pos, err))
			if !r.sleep(ctx, stop, r.backoff()) {
				return nil
			}
			continue
		}
		if len(page.Records) == 0 {
			// Nothing to apply; move the checkpoint past the positions
			// read (and clear a failure to read), then wait for news.
			if page.Next > r.pos || r.attempts > 0 {
				if err := r.commit(ctx, page, nil); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					if !errors.Is(err, errStale) {
						log.WarnContext(ctx, "projections: cannot move the checkpoint", "error", err)
						r.sleep(ctx, stop, r.c.cfg.RetryMin)
					}
					continue
				}
			}
			if !r.idle(ctx, stop) {
				return nil
			}
			continue
		}
		start := time.Now()
		err = r.commit(ctx, page, page.Records)
		switch {
		case err == nil:
			r.c.cfg.Metrics.batch(r.e.name, len(page.Records), time.Since(start))
			if len(page.Records) < limit && r.pos >= r.isolateUntil {
				// A partial page read everything up to the head: wait for
				// news rather than read again.
				if !r.idle(ctx, stop) {
					return nil
				}
			}
		case errors.Is(err, errStale):
			r.c.cfg.Metrics.failed(r.e.name, "stale")
			log.InfoContext(ctx, "projections: checkpoint moved under the runner; rereading it")
			// Claimed again, not only reread: the row may be gone.
			if err := r.claim(ctx); err != nil {
				r.sleep(ctx, stop, r.c.cfg.RetryMin)
			}
		case ctx.Err() != nil:
			return nil
		default:
			r.c.cfg.Metrics.failed(r.e.name, "apply")
			// The failure is pinned to one event when the page had one,
			// or when a record could not be decoded; otherwise it is the
			// page's first until narrowed down.
			first, last := page.Records[0].Position, page.Records[len(page.Records)-1].Position
			var de *eventstore.DecodeError
			if errors.As(err, &de) {
				last = de.Position
			}
			r.fail(ctx, log, first, &ApplyError{Projection: r.e.name, First: first, Last: last, Err: err})
			if first != last {
				// Narrow it down at once: the next pages hold one event
				// each up to last, so the events before the failing one
				// are applied and the failing one is found.
				r.isolateUntil = last
				continue
			}
			if !r.sleep(ctx, stop, r.backoff()) {
				return nil
			}
		}
	}
}

// claim creates the checkpoint row if needed, records this process as its
// owner and reads it.
func (r *runner) claim(ctx context.Context) error {
	if _, err := r.c.pool.Exec(ctx, ensureSQL, r.e.name); err != nil {
		return err
	}
	if r.wake != nil {
		st, _, _ := r.wake.snapshot()
		r.control = st.control
	}
	if err := r.scanRow(r.c.pool.QueryRow(ctx, claimSQL, r.e.name, r.c.cfg.Owner)); err != nil {
		return err
	}
	r.prog.publish(r.pos)
	return nil
}

// reload rereads the checkpoint row.
func (r *runner) reload(ctx context.Context, control int64) error {
	if err := r.scanRow(r.c.pool.QueryRow(ctx, rowSQL, r.e.name)); err != nil {
		return err
	}
	r.control = control
	r.prog.publish(r.pos)
	return nil
}

func (r *runner) scanRow(row pgx.Row) error {
	var pos, gen, failing int64
	var attempts int
	if err := row.Scan(&pos, &gen, &attempts, &failing); err != nil {
		return err
	}
	if eventstore.Position(pos) != r.pos || gen != r.gen {
		// Another runner or an operator moved it: whatever this runner
		// was narrowing down is moot.
		r.isolateUntil = 0
	}
	r.pos, r.gen, r.attempts, r.failingPos = eventstore.Position(pos), gen, attempts, eventstore.Position(failing)
	return nil
}

// commit applies records (none: only moves the checkpoint) and moves the
// checkpoint to page.Next, in one transaction that holds the checkpoint
// row's lock from its first statement.
func (r *runner) commit(ctx context.Context, page *eventstore.Page, records []eventstore.RawRecord) (err error) {
	tx, err := r.c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rollback(ctx, tx)
		}
	}()
	var pos, gen int64
	var skipped []int64
	b := &pgx.Batch{}
	b.Queue(lockRowSQL, r.e.name).QueryRow(func(row pgx.Row) error { return row.Scan(&pos, &gen) })
	b.Queue(skipsSQL, r.e.name, int64(r.pos), int64(page.Next)).QueryRow(func(row pgx.Row) error { return row.Scan(&skipped) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return errStale // the row is gone: an operator deleted it
		}
		return err
	}
	if eventstore.Position(pos) != r.pos || gen != r.gen {
		return errStale
	}
	if len(skipped) > 0 {
		records = slices.DeleteFunc(slices.Clone(records), func(rec eventstore.RawRecord) bool {
			return slices.Contains(skipped, int64(rec.Position))
		})
	}
	if len(records) > 0 {
		ctx, span := r.c.startBatchSpan(ctx, r.e.name, records)
		err := r.e.apply(ctx, tx, records)
		endBatchSpan(span, err)
		if err != nil {
			return err
		}
	}
	tag, err := tx.Exec(ctx, advanceSQL, r.e.name, int64(r.pos), r.gen, int64(page.Next), len(records))
	if err != nil {
		return fmt.Errorf("error moving the checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errStale // cannot happen while the row is locked; never write on
	}
	if err := tx.Commit(ctx); err != nil {
		// The commit may or may not have happened: reread the row, and
		// go on from whatever it says.
		_ = r.reload(context.WithoutCancel(ctx), r.control)
		return fmt.Errorf("error committing: %w", err)
	}
	r.pos = page.Next
	r.attempts, r.failingPos = 0, 0
	r.prog.publish(r.pos)
	return nil
}

// fail records a failed attempt at position (0: reading failed) in the
// checkpoint row, for status and WaitFor, and logs it.
func (r *runner) fail(ctx context.Context, log *slog.Logger, position eventstore.Position, err error) {
	if position != r.failingPos {
		r.attempts = 0
	}
	r.failingPos = position
	r.attempts++
	delay := r.backoff()
	var attempts int
	var failing any
	if position > 0 {
		failing = int64(position)
	}
	// On a context of its own: a runner stopped mid-batch still records
	// why the batch failed, unless the database is away too.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	werr := r.c.pool.QueryRow(wctx, failSQL, r.e.name, int64(r.pos), r.gen, failing, err.Error(), delay.String()).Scan(&attempts)
	if werr == nil {
		r.attempts = attempts
	}
	attrs := []any{"error", err, "checkpoint", int64(r.pos),
		"failing_position", int64(position), "attempts", r.attempts, "retry_in", delay.String()}
	if pe := (*PanicError)(nil); errors.As(err, &pe) {
		attrs = append(attrs, "stack", pe.Stack)
	}
	log.ErrorContext(ctx, "projections: apply failed; retrying", attrs...)
}

// backoff is the wait after the current number of failed attempts:
// doubling from RetryMin up to RetryMax, with up to 20% of jitter.
func (r *runner) backoff() time.Duration {
	d := r.c.cfg.RetryMin
	for i := 1; i < r.attempts && d < r.c.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.c.cfg.RetryMax)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// idle waits, after a read that reached the log's head, for the watcher's
// next change, or IdleRecheck. It returns false when the runner must stop.
//
// The watcher's state is taken now, after the read: waiting on the state
// from before it would send a runner under steady writes straight back to
// read, as fast as it can, taking the store's barrier each time. This way a
// runner reads at most once per PollInterval while it keeps up.
func (r *runner) idle(ctx context.Context, stop <-chan struct{}) bool {
	if r.wake == nil {
		return r.sleep(ctx, stop, r.c.cfg.PollInterval)
	}
	snap, ok, changed := r.wake.snapshot()
	switch {
	case ok && snap.control != r.control:
		return true // reread the row at once
	case !ok || snap.head > int64(r.pos):
		// Positions were drawn since the read: read again after a poll
		// interval, not at once.
		return r.sleep(ctx, stop, r.c.cfg.PollInterval)
	}
	timer := time.NewTimer(r.c.cfg.IdleRecheck)
	defer timer.Stop()
	select {
	case <-changed:
		return true
	case <-timer.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// sleep waits d, or less when an operator changes a checkpoint row (a skip
// or a reset ends a backoff at once). It returns false when the runner
// must stop.
func (r *runner) sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		var changed <-chan struct{}
		if r.wake != nil {
			var st watchState
			var ok bool
			if st, ok, changed = r.wake.snapshot(); ok && st.control != r.control {
				return true
			}
		}
		select {
		case <-timer.C:
			return true
		case <-changed:
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// rollback ends a transaction that did not commit, on a context that is
// not cancelled with the caller's.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}
