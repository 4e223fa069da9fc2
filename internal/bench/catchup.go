package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// with writers running, what it costs them.

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
	if _, err := r.readAll(ctx, t, nil, 0); err != nil {
		return err
	}
	for _, q := range []*eventstore.Query{nil, &catchUpFilter} {
		for _, writers := range []int{0, r.cfg.CatchUpWriters} {
			cu, err := r.readAll(ctx, t, q, writers)
			if err != nil {
				return err
			}
			res.CatchUp = append(res.CatchUp, cu)
			fmt.Fprintf(r.cfg.Log, "catchup %-12s filter=%-28s writers=%d  %9.0f records/s  %9.0f positions/s  page p50 %.2fms p99 %.2fms  writers %.0f cmd/s p99 %.2fms\n",
				name, cu.Filter, writers, cu.RecordsPerS, cu.PositionsPer, cu.PageLatency.P50, cu.PageLatency.P99, cu.WriterPerS, cu.WriterLatency.P99)
		}
	}
	return nil
}

// readAll reads the log from position 0 to its current head, with writers
// dispatching disjoint commands meanwhile.
func (r *runner) readAll(ctx context.Context, t *target, q *eventstore.Query, writers int) (CatchUp, error) {
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
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stats := make([]*clientStats, writers)
	write := disjoint(t)
	for i := range writers {
		cs := &clientStats{kinds: map[string][]time.Duration{}, rejections: map[string]int64{}, reasons: map[string]int64{}}
		stats[i] = cs
		wg.Go(func() {
			var trips tripCounter
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				trips = tripCounter{}
				t0 := time.Now()
				_, err := write(ctx, i, seq, prefix)
				cs.record("", time.Since(t0), err, &trips, nil)
			}
		})
	}

	var pages []time.Duration
	start := time.Now()
	after := eventstore.Position(0)
	for {
		t0 := time.Now()
		page, err := t.store.ReadAfter(ctx, after, &eventstore.ReadAfterOpts{Query: q})
		if err != nil {
			cu.Errors++
			cu.FirstError = err.Error()
			break
		}
		pages = append(pages, time.Since(t0))
		cu.Records += int64(len(page.Records))
		if page.Next <= after && len(page.Records) == 0 {
			break // no progress: cannot happen, but never spin
		}
		after = page.Next
		if int64(after) >= head {
			break
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	cu.Pages = int64(len(pages))
	cu.Seconds = elapsed.Seconds()
	cu.RecordsPerS = float64(cu.Records) / cu.Seconds
	cu.PositionsPer = float64(head) / cu.Seconds
	cu.PageLatency = latencyOf(pages)
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
