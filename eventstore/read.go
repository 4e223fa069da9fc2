package eventstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reads that a decision or a catch-up reader relies on run behind a brief
// barrier: in one round trip they take, in a transaction of their own, the
// locks that every writer of a matching event holds from before it draws a
// position until it commits, read the position sequence's high-water mark,
// and commit, which releases the locks at once; then, with no lock held,
// they read the matching events and keep those at or below the mark. Once
// the locks were granted no matching writer was in flight, so every
// matching event at or below the mark is committed and visible to the
// read. Without the barrier a reader could see position 101 while 100 is
// still being committed, move on, and skip 100 forever.
//
// The barrier tries its locks first (pg_try_advisory_xact_lock): a try
// never waits, so writers never queue behind it. A reader that waited for
// its locks instead would make every writer that asks for them meanwhile
// wait too (PostgreSQL queues a shared request behind a waiting exclusive
// one), and a reader following the log at 1,000 commits a second takes
// the barrier about as often: the writers' p99 went from 3 to 73 ms. When
// the locks are taken, it backs off briefly (from barrierBackoff, doubling
// up to barrierMaxBackoff) and tries again; after barrierTries tries it
// waits for them, so that a reader is not starved by writers that never
// leave the locks free.

// Barrier tries; see above.
const (
	barrierTries      = 8
	barrierBackoff    = 100 * time.Microsecond
	barrierMaxBackoff = 2 * time.Millisecond
)

// ReadResult is a consistent read of a query's context.
type ReadResult struct {
	// Records matching the query, in position order.
	Records []RawRecord
	// After is the highest position the read observed for the query (nil
	// if nothing matched): pass it to FailIfEventsMatch with the query to
	// append a decision made from these records.
	After *Position
}

// Read returns every event matching q, behind the barrier, so that the
// result and its After can guard a later Append. Dispatch does this inside
// its own transaction; Read is for callers that decide outside the store.
func (s *Store) Read(ctx context.Context, q Query) (*ReadResult, error) {
	if err := s.cfg.Limits.checkQuery("query", q); err != nil {
		return nil, err
	}
	q = q.normalized()
	records, _, err := s.readBehindBarrier(ctx, q, -1, 0)
	if err != nil {
		return nil, err
	}
	res := &ReadResult{Records: records}
	if n := len(records); n > 0 {
		res.After = &records[n-1].Position
	}
	return res, nil
}

// ReadStream returns the events of a stream with a revision greater than
// afterRevision (0 for all), in revision order, and the stream's revision
// as of the read.
func (s *Store) ReadStream(ctx context.Context, stream string, afterRevision int64) ([]RawRecord, int64, error) {
	if err := s.cfg.Limits.checkStream(stream); err != nil {
		return nil, 0, err
	}
	var records []RawRecord
	var head int64
	b := &pgx.Batch{}
	b.Queue(streamHeadSQL, stream).QueryRow(func(row pgx.Row) error { return row.Scan(&head) })
	b.Queue(streamReadSQL, stream, afterRevision).Query(func(rows pgx.Rows) (err error) {
		records, err = pgx.CollectRows(rows, scanRecord)
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, storeError(ctx, "reading stream", err)
	}
	// Both statements ran in one implicit transaction but with separate
	// snapshots; report the revision the records reached when they are
	// ahead of the head read first.
	if n := len(records); n > 0 && records[n-1].Revision > head {
		head = records[n-1].Revision
	}
	return records, head, nil
}

// ReadAfterOpts filter and bound a catch-up read.
type ReadAfterOpts struct {
	// Query restricts the read to matching events. Nil: every event.
	Query *Query
	// Limit bounds the records returned. Default: DefaultReadLimit (1000).
	Limit int
}

// Page is one batch of a catch-up read.
type Page struct {
	// Records after the requested position, in position order.
	Records []RawRecord
	// Next is the position to continue from. It is the last record's
	// position when the page is full, and otherwise the log's high-water
	// mark as of the read: every matching event at or below Next has been
	// returned, now or on an earlier page.
	Next Position
}

// ReadAfter returns events with a position greater than after, optionally
// filtered, in position order, up to a limit. Called repeatedly with
// Page.Next it returns every committed event exactly once, in a stable
// order: it never skips an event that commits later with a lower position.
// A caught-up reader that finds no new position takes no lock at all.
func (s *Store) ReadAfter(ctx context.Context, after Position, opts *ReadAfterOpts) (*Page, error) {
	if opts == nil {
		opts = &ReadAfterOpts{}
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	if after < 0 {
		return nil, &InvalidInputError{Field: "after", Reason: "negative"}
	}
	q := AllEvents()
	if opts.Query != nil {
		if err := s.cfg.Limits.checkQuery("query", *opts.Query); err != nil {
			return nil, err
		}
		q = opts.Query.normalized()
	}
	records, hwm, err := s.readBehindBarrier(ctx, q, after, limit)
	if err != nil {
		return nil, err
	}
	page := &Page{Records: records, Next: after}
	if len(records) == limit {
		page.Next = records[len(records)-1].Position
	} else if hwm > after {
		page.Next = hwm
	}
	return page, nil
}

// ReadPositions returns the events at the given positions, in position
// order. Missing positions are skipped.
func (s *Store) ReadPositions(ctx context.Context, positions ...Position) ([]RawRecord, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, storeError(ctx, "acquiring a connection", err)
	}
	defer conn.Release()
	return s.ReadPositionsWith(ctx, conn, positions...)
}

// ReadPositionsWith is ReadPositions through q, for a caller that reads
// inside a transaction of its own (a reaction that holds the River jobs it
// claimed until it commits) and must not take a second connection.
func (s *Store) ReadPositionsWith(ctx context.Context, q Querier, positions ...Position) ([]RawRecord, error) {
	ps := make([]int64, len(positions))
	for i, p := range positions {
		ps[i] = int64(p)
	}
	records, err := readPositions(ctx, q, ps)
	if err != nil {
		return nil, storeError(ctx, "reading events", err)
	}
	return records, nil
}

// Querier runs a query: a pgx.Tx, a *pgx.Conn, a *pgxpool.Conn or a
// *pgxpool.Pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readPositions(ctx context.Context, q Querier, positions []int64) ([]RawRecord, error) {
	rows, err := q.Query(ctx, positionsReadSQL, positions)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanRecord)
}

// readBehindBarrier reads the events matching q after a position (up to
// limit of them; limit 0: all), in one round trip: the barrier's
// transaction (BEGIN, the keys, the high-water mark, COMMIT), then the read
// with no lock held. It returns the records at or below the mark, and the
// mark. With after >= 0 the barrier takes its keys only if a position above
// after has been drawn (a catch-up read); with after < 0 always (a
// decision's read of everything).
func (s *Store) readBehindBarrier(ctx context.Context, q Query, after Position, limit int) ([]RawRecord, Position, error) {
	if err := s.checkStrategy(ctx); err != nil {
		return nil, 0, err
	}
	from := max(after, 0)
	var records []RawRecord
	read := func(b *pgx.Batch) {
		var a args
		b.Queue(readSQL(q, from, limit, &a), a...).Query(func(rows pgx.Rows) (err error) {
			records, err = pgx.CollectRows(rows, scanRecord)
			return err
		})
	}
	locked, hwm, err := s.barrier(ctx, q, after, read)
	if err != nil {
		return nil, 0, storeError(ctx, "reading events", err)
	}
	if !locked {
		// Nothing above after had been drawn when the barrier looked; the
		// mark read next may already be higher, but without the locks it
		// proves nothing.
		hwm = int64(from)
	}
	// Events above the mark were drawn after the barrier: a lower position
	// may still be in flight, so they wait for the next read.
	n := 0
	for n < len(records) && records[n].Position <= Position(hwm) {
		n++
	}
	return records[:n], Position(hwm), nil
}

// barrier takes the barrier over q's keys unless no position above after
// has been drawn (after < 0: always), reads the high-water mark behind
// it, and runs read's statements after it (read may be nil). It reports
// whether it took the keys, and the mark. It tries the keys up to
// barrierTries times before it waits for them (see the top of this file);
// read's statements share the round trip of the first try, and of the
// try that succeeds or the wait.
func (s *Store) barrier(ctx context.Context, q Query, after Position, read func(*pgx.Batch)) (locked bool, hwm int64, err error) {
	keys, excl := s.strategy.barrierKeys(q).ordered()
	backoff := barrierBackoff
	for try := 0; ; try++ {
		wait := try >= s.barrierTries
		b := &pgx.Batch{}
		b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
		var taken int64
		got := true
		if wait {
			b.Queue(barrierSQL, keys, excl, int64(after)).QueryRow(func(row pgx.Row) error { return row.Scan(&taken) })
		} else {
			b.Queue(tryBarrierSQL, keys, excl, int64(after)).QueryRow(func(row pgx.Row) error { return row.Scan(&taken, &got) })
		}
		b.Queue(sequenceSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&hwm) })
		b.Queue("COMMIT")
		// The first try reads optimistically in the same round trip;
		// later ones read only once the barrier held.
		if read != nil && (try == 0 || wait) {
			read(b)
		}
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return false, 0, err
		}
		if got {
			if read != nil && try > 0 && !wait {
				b := &pgx.Batch{}
				read(b)
				if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
					return false, 0, err
				}
			}
			return taken > 0, hwm, nil
		}
		if err := sleep(ctx, backoff); err != nil {
			return false, 0, err
		}
		backoff = min(2*backoff, barrierMaxBackoff)
	}
}

// Decode decodes raw records with codec.
func Decode[E any](codec Codec[E], raws []RawRecord) ([]Record[E], error) {
	out := make([]Record[E], len(raws))
	for i, raw := range raws {
		ev, err := codec.Decode(raw)
		if err != nil {
			return nil, &DecodeError{Position: raw.Position, Type: raw.Type, Version: raw.Version, Err: err}
		}
		out[i] = Record[E]{RawRecord: raw, Event: ev}
	}
	return out, nil
}

// Project reads the events matching q and folds them with view. It returns
// the view's state and the highest position it saw.
func Project[E, S any](ctx context.Context, s *Store, codec Codec[E], q Query, view View[E, S]) (S, *Position, error) {
	var zero S
	res, err := s.Read(ctx, q)
	if err != nil {
		return zero, nil, err
	}
	records, err := Decode(codec, res.Records)
	if err != nil {
		return zero, nil, err
	}
	return view.Fold(records), res.After, nil
}

// HighWaterMark returns a position at or below which every event is
// committed or rolled back, for good: no event at or below it can appear
// later. It reads the position sequence behind the barrier over all
// events, so it waits for the dispatches in flight; new ones wait only
// for the moment it holds its locks, unless its tries all failed and it
// waits for them in the queue (see the top of this file). after must be 0
// or a mark HighWaterMark returned before: when no position above it has
// been drawn since, it is returned again and no lock is taken.
//
// The reactors package orders effects by position with it: an effect may
// run once no event below its position can still plan an earlier one.
func (s *Store) HighWaterMark(ctx context.Context, after Position) (Position, error) {
	if err := s.checkStrategy(ctx); err != nil {
		return 0, err
	}
	locked, hwm, err := s.barrier(ctx, AllEvents().normalized(), after, nil)
	if err != nil {
		return 0, storeError(ctx, "reading the high-water mark", err)
	}
	if !locked {
		return after, nil
	}
	return Position(hwm), nil
}
