package eventstore

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Reads that a decision or a catch-up reader relies on run behind a
// barrier: they first take, in the same implicit transaction, the locks that
// every writer of a matching event holds from before it draws a position
// until it commits. Once granted, no matching writer is in flight, so every
// matching event with a lower position than any later one is already
// committed and visible to the next statement. Without the barrier a reader
// could see position 101 while 100 is still being committed, move on, and
// skip 100 forever.

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
	var a args
	records, err := s.readBehindBarrier(ctx, q, readSQL(q, 0, 0, &a), a)
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
func (s *Store) ReadAfter(ctx context.Context, after Position, opts *ReadAfterOpts) (*Page, error) {
	if opts == nil {
		opts = &ReadAfterOpts{}
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	q := AllEvents()
	if opts.Query != nil {
		if err := s.cfg.Limits.checkQuery("query", *opts.Query); err != nil {
			return nil, err
		}
		q = opts.Query.normalized()
	}
	var a args
	sql := readSQL(q, after, limit, &a)
	var hwm int64
	records, err := s.readBehindBarrier(ctx, q, sql, a, func(b *pgx.Batch) {
		// Read under the barrier: no matching writer is in flight, so every
		// matching event up to the sequence's current value is visible.
		b.Queue(sequenceSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&hwm) })
	})
	if err != nil {
		return nil, err
	}
	page := &Page{Records: records, Next: after}
	if len(records) == limit {
		page.Next = records[len(records)-1].Position
	} else if Position(hwm) > after {
		page.Next = Position(hwm)
	}
	return page, nil
}

// ReadPositions returns the events at the given positions, in position
// order. Missing positions are skipped.
func (s *Store) ReadPositions(ctx context.Context, positions ...Position) ([]RawRecord, error) {
	ps := make([]int64, len(positions))
	for i, p := range positions {
		ps[i] = int64(p)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, storeError(ctx, "acquiring a connection", err)
	}
	defer conn.Release()
	records, err := readPositions(ctx, conn, ps)
	if err != nil {
		return nil, storeError(ctx, "reading events", err)
	}
	return records, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readPositions(ctx context.Context, q querier, positions []int64) ([]RawRecord, error) {
	rows, err := q.Query(ctx, positionsReadSQL, positions)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanRecord)
}

// barrierKeys are the locks a read of q waits for: under the keys strategy
// the query's own read keys; under the other strategies (whose writers do
// not take per-context keys) the all-events key, which every writer holds
// shared.
func (s *Store) barrierKeys(q Query) lockSet {
	if s.cfg.LockStrategy == LockKeys {
		return readKeys(q)
	}
	return lockSet{allKey: true}
}

// readBehindBarrier runs the barrier and the read in one batch. A batch
// outside a transaction is one implicit transaction, so the transaction
// locks are held until the last statement has run.
func (s *Store) readBehindBarrier(ctx context.Context, q Query, sql string, a args, extra ...func(*pgx.Batch)) ([]RawRecord, error) {
	keys, excl := s.barrierKeys(q).ordered()
	b := &pgx.Batch{}
	b.Queue(lockSQL, keys, excl)
	var records []RawRecord
	b.Queue(sql, a...).Query(func(rows pgx.Rows) (err error) {
		records, err = pgx.CollectRows(rows, scanRecord)
		return err
	})
	for _, f := range extra {
		f(b)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, storeError(ctx, "reading events", err)
	}
	return records, nil
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
