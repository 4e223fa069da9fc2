package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// The catch-up scenario reads a stored log from the start with
// Store.ReadAfter, page after page, until it reaches the head the log had
// when the read began, the way a projection catches up. Each read runs
// behind the store's barrier, which briefly takes the keys of every writer
// of the read's scope: the scenario reports what that costs the reader and,
// with writers running, what it costs them: the writers run once alone and
// once beside a reader that reads pass after pass, windows of the same
// length back to back.

// catchUpFilter is the filtered read: one event type, a quarter of the
// loaded log, and the type the concurrent writers write.
var catchUpFilter = eventstore.NewQuery(eventstore.Types(tickets.TypeUserRegistered))

func (r *runner) catchUp(ctx context.Context, res *Results) (err error) {
	fmt.Fprintf(r.cfg.Log, "catchup: loading %d events\n", r.cfg.CatchUpEvents)
	tmpl, drop, err := r.template(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return loadHistory(ctx, pool, r.cfg.CatchUpEvents, "c")
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop()) }()
	for _, name := range strategyNames(r.cfg.Strategies) {
		if err := r.catchUpStrategy(ctx, res, tmpl, name); err != nil {
			return fmt.Errorf("catchup/%s: %w", name, err)
		}
	}
	return nil
}

func (r *runner) catchUpStrategy(ctx context.Context, res *Results, tmpl, name string) (err error) {
	url, drop, err := r.cfg.Databases.Clone(ctx, tmpl)
	if err != nil {
		return err
	}
	t, err := openTarget(ctx, r.cfg, name, url, drop, r.cfg.CatchUpWriters+2)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	// A first, unmeasured pass brings the clone's pages into memory.
	if _, err := r.readWhileWriting(ctx, t, nil, 0, true); err != nil {
		return err
	}
	for _, q := range []*eventstore.Query{nil, &catchUpFilter} {
		for _, writers := range []int{0, r.cfg.CatchUpWriters} {
			var alone CatchUp
			if writers > 0 {
				// The writers' own figure, with no reader, just before
				// the window they share with one.
				if alone, err = r.readWhileWriting(ctx, t, q, writers, false); err != nil {
					return err
				}
			}
			cu, err := r.readWhileWriting(ctx, t, q, writers, true)
			if err != nil {
				return err
			}
			if writers > 0 {
				cu.WriterAlonePerS, cu.WriterAloneLatency = alone.WriterPerS, alone.WriterLatency
				cu.Errors += alone.Errors
				if cu.FirstError == "" {
					cu.FirstError = alone.FirstError
				}
			}
			res.CatchUp = append(res.CatchUp, cu)
			fmt.Fprintf(r.cfg.Log, "catchup %-12s filter=%-28s writers=%d  %9.0f records/s  %9.0f positions/s  %d passes  page p50 %.2fms p99 %.2fms  writers %.0f cmd/s (alone %.0f) p99 %.2fms\n",
				name, cu.Filter, writers, cu.RecordsPerS, cu.PositionsPer, cu.Passes, cu.PageLatency.P50, cu.PageLatency.P99, cu.WriterPerS, cu.WriterAlonePerS, cu.WriterLatency.P99)
		}
	}
	return nil
}

// readWhileWriting runs writers dispatching disjoint commands and, if read,
// a reader reading the log from position 0 to its head, pass after pass,
// the way a projection catches up. Without writers the reader reads one
// pass. With writers the window lasts Config.Duration and until they
// decided Config.MinCommands commands (at most maxWindow); the reader's
// pass open when it closes is cut there.
func (r *runner) readWhileWriting(ctx context.Context, t *target, q *eventstore.Query, writers int, read bool) (CatchUp, error) {
	cu := CatchUp{Strategy: t.name, Filter: "none", Writers: writers}
	if q != nil {
		cu.Filter = q.String()
	}
	var head int64
	if err := t.pool.QueryRow(ctx, "SELECT last_value FROM factos_events_position_seq").Scan(&head); err != nil {
		return cu, err
	}
	cu.Stored = head

	t.cells++
	prefix := fmt.Sprintf("w%d", t.cells)
	var (
		closed   atomic.Bool
		decided  atomic.Int64
		reached  = make(chan struct{})
		readDone = make(chan struct{})
		wg       sync.WaitGroup
	)
	minCommands := int64(max(r.cfg.MinCommands, 1))
	stats := make([]*clientStats, writers)
	write := disjoint(t)
	for i := range writers {
		cs := &clientStats{kinds: map[string][]time.Duration{}, rejections: map[string]int64{}, reasons: map[string]int64{}}
		stats[i] = cs
		wg.Go(func() {
			var trips tripCounter
			for seq := 0; !closed.Load() && ctx.Err() == nil; seq++ {
				trips = tripCounter{}
				t0 := time.Now()
				_, err := write(ctx, i, seq, prefix)
				d := time.Since(t0)
				if closed.Load() {
					return
				}
				if cs.record("", d, err, &trips, nil) && decided.Add(1) == minCommands {
					close(reached)
				}
			}
		})
	}

	var pages []time.Duration
	var positions int64
	start := time.Now()
	if read {
		wg.Go(func() {
			defer close(readDone)
			for !closed.Load() {
				cu.Passes++
				passHead := head
				if cu.Passes > 1 {
					if err := t.pool.QueryRow(ctx, "SELECT last_value FROM factos_events_position_seq").Scan(&passHead); err != nil {
						cu.Errors++
						cu.FirstError = err.Error()
						return
					}
				}
				after := eventstore.Position(0)
				for !closed.Load() {
					t0 := time.Now()
					page, err := t.store.ReadAfter(ctx, after, &eventstore.ReadAfterOpts{Query: q})
					if err != nil {
						cu.Errors++
						cu.FirstError = err.Error()
						return
					}
					pages = append(pages, time.Since(t0))
					cu.Records += int64(len(page.Records))
					if page.Next <= after && len(page.Records) == 0 {
						break // no progress: cannot happen, but never spin
					}
					positions += int64(page.Next - after)
					after = page.Next
					if int64(after) >= passHead {
						break
					}
				}
				if writers == 0 {
					return // the reader alone reads one pass
				}
			}
		})
	} else {
		close(readDone)
	}
	if writers == 0 {
		<-readDone
	} else {
		select {
		case <-time.After(r.cfg.Duration):
		case <-ctx.Done():
		}
		select {
		case <-reached:
		case <-time.After(maxWindow - time.Since(start)):
		case <-ctx.Done():
		}
	}
	closed.Store(true)
	elapsed := time.Since(start)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return cu, err
	}

	cu.Pages = int64(len(pages))
	cu.Seconds = elapsed.Seconds()
	if read {
		cu.RecordsPerS = float64(cu.Records) / cu.Seconds
		cu.PositionsPer = float64(positions) / cu.Seconds
		cu.PageLatency = latencyOf(pages)
	}
	if writers > 0 {
		m := Measurement{Seconds: cu.Seconds}
		m.fill(stats)
		cu.WriterPerS = m.PerSecond
		cu.WriterLatency = m.Latency
		cu.Errors += m.Errors + m.Conflicts
		if cu.FirstError == "" {
			cu.FirstError = m.FirstError
		}
	}
	return cu, nil
}
