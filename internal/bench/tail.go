package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// The tail scenario measures a caught-up reader: commands are dispatched
// at a steady offered rate under keys while one reader follows the log with
// Store.ReadAfter from its head, waiting tailPoll whenever a read finds
// nothing new. For every record it reports how long after the record's
// recorded_at (its insert, just before its commit) the reader returned it.

// tailPoll is how long the tailing reader waits after a read that found
// nothing new, as a projection's watcher or an application's poll loop
// would.
const tailPoll = 10 * time.Millisecond

// Tail is the tail scenario at one offered rate.
type Tail struct {
	// Rate is the offered rate, commands per second; PerSecond the rate
	// achieved.
	Rate      int     `json:"rate_per_s"`
	PerSecond float64 `json:"commands_per_s"`
	Seconds   float64 `json:"seconds"`
	Commands  int64   `json:"commands"`
	// Seen is how many of the commands' records the reader returned; it
	// must equal Commands (one event each).
	Seen   int64   `json:"seen"`
	PollMs float64 `json:"poll_ms"`
	// Dispatch is the dispatch's latency; Lag runs from each record's
	// recorded_at to the return of the read that returned it.
	Dispatch   Latency `json:"dispatch"`
	Lag        Latency `json:"lag"`
	Reads      int64   `json:"reads"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// tail runs the tail scenario: one database under keys, each rate of
// TailRates for Duration with a reader that tails the log.
func (r *runner) tail(ctx context.Context, res *Results) (err error) {
	t, err := r.keysTarget(ctx, 64)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	h := tickets.RegisterUserHandler(t.codec)
	after := eventstore.Position(0)
	for i, rate := range r.cfg.TailRates {
		tr := Tail{Rate: rate, PollMs: float64(tailPoll) / float64(time.Millisecond)}
		var (
			mu   sync.Mutex
			lag  []time.Duration
			seen int64
			wg   sync.WaitGroup
		)
		// A warm-up at the rate, unmeasured, as every other cell has: it
		// opens the pool's connections and warms caches and plans. The
		// measured reader then starts from the log's head.
		wp := fmt.Sprintf("w%d", i)
		if _, err := offer(ctx, rate, r.cfg.Warmup, 0, func(ctx context.Context, i int) error {
			id := fmt.Sprintf("%s-%d", wp, i)
			_, err := eventstore.Dispatch(ctx, t.store, h, tickets.RegisterUser{UserID: id, Username: id}, nil)
			return err
		}); err != nil {
			return err
		}
		for {
			page, err := t.store.ReadAfter(ctx, after, nil)
			if err != nil {
				return err
			}
			after = page.Next
			if len(page.Records) == 0 {
				break
			}
		}
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				page, err := t.store.ReadAfter(ctx, after, nil)
				now := time.Now()
				if err != nil {
					tr.Errors++
					tr.FirstError = err.Error()
					return
				}
				tr.Reads++
				mu.Lock()
				for _, rec := range page.Records {
					lag = append(lag, now.Sub(rec.RecordedAt))
				}
				seen += int64(len(page.Records))
				mu.Unlock()
				after = page.Next
				if len(page.Records) > 0 {
					continue
				}
				select {
				case <-stop:
					return
				case <-time.After(tailPoll):
				}
			}
		})
		prefix := fmt.Sprintf("t%d", i)
		o, err := offer(ctx, rate, r.cfg.Duration, r.cfg.MinCommands, func(ctx context.Context, i int) error {
			id := fmt.Sprintf("%s-%d", prefix, i)
			_, err := eventstore.Dispatch(ctx, t.store, h, tickets.RegisterUser{UserID: id, Username: id}, nil)
			return err
		})
		if err != nil {
			close(stop)
			wg.Wait()
			return err
		}
		// Wait for the reader to return every committed record.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := seen
			mu.Unlock()
			if n >= int64(len(o.lat)) {
				break
			}
			time.Sleep(tailPoll)
		}
		close(stop)
		wg.Wait()
		tr.Seconds, tr.Commands, tr.PerSecond = o.seconds, int64(len(o.lat)), o.perSecond()
		tr.Errors += o.errors
		if tr.FirstError == "" {
			tr.FirstError = o.firstErr
		}
		tr.Dispatch, tr.Seen, tr.Lag = latencyOf(o.lat), seen, latencyOf(lag)
		res.Tail = append(res.Tail, tr)
		fmt.Fprintf(r.cfg.Log, "tail rate=%-5d %7.0f cmd/s  seen %d of %d  dispatch p50 %.2fms p99 %.2fms  commit to seen p50 %.1fms p99 %.1fms max %.1fms  %d reads\n",
			rate, tr.PerSecond, tr.Seen, tr.Commands, tr.Dispatch.P50, tr.Dispatch.P99, tr.Lag.P50, tr.Lag.P99, tr.Lag.Max, tr.Reads)
	}
	return nil
}
