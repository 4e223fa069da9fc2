package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// The soak's load. A command is a ticket purchase with a command id;
// every soakPerConcert-th command schedules the next concert instead, so
// that each concert sells out (the last buyers are rejected) and the
// context a purchase reads stays the size of one concert.
const (
	soakRate       = 200 // commands per second
	soakPerConcert = 100 // commands per concert, its schedule included
	soakCapacity   = 80  // seats per concert: about a fifth of buyers rejected
	soakWorkers    = 16  // commands in flight at most
)

// soakSample is the process and its pool at one instant.
type soakSample struct {
	At           float64 `json:"at_s"`
	Commands     int64   `json:"commands"`
	HeapInUse    uint64  `json:"heap_in_use_bytes"` // objects plus the unused parts of their spans
	HeapLive     uint64  `json:"heap_live_bytes"`   // marked live by the last GC
	Goroutines   uint64  `json:"goroutines"`
	PoolTotal    int32   `json:"pool_total"`
	PoolAcquired int32   `json:"pool_acquired"`
	RiverBacklog int     `json:"river_backlog"` // jobs not yet finished
}

// soakStat summarizes one series: mean of the first and last thirds, and
// the extremes.
type soakStat struct {
	FirstThird float64 `json:"first_third_mean"`
	LastThird  float64 `json:"last_third_mean"`
	Min        float64 `json:"min"`
	Max        float64 `json:"max"`
}

func statOf(vals []float64) soakStat {
	third := max(len(vals)/3, 1)
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	return soakStat{FirstThird: round2(mean(vals[:third])), LastThird: round2(mean(vals[len(vals)-third:])), Min: round2(slices.Min(vals)), Max: round2(slices.Max(vals))}
}

// round2 keeps two decimals, for a summary people read.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

func millis(d time.Duration) float64 {
	return round2(d.Seconds() * 1000)
}

// latencies is a fixed histogram of dispatch durations, 50µs wide buckets
// up to 5s, allocated once so that recording does not grow the heap the
// soak watches.
type latencies struct {
	mu      sync.Mutex
	buckets [100_000]int64
	n       int64
}

const latencyBucket = 50 * time.Microsecond

func (l *latencies) add(d time.Duration) {
	i := min(int(d/latencyBucket), len(l.buckets)-1)
	l.mu.Lock()
	l.buckets[i]++
	l.n++
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	want, seen := int64(q*float64(l.n)), int64(0)
	for i, c := range l.buckets {
		if seen += c; seen > want {
			return time.Duration(i+1) * latencyBucket
		}
	}
	return time.Duration(len(l.buckets)) * latencyBucket
}

func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("FACTOS_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 3*time.Second {
			t.Fatalf("FACTOS_SOAK_DURATION=%q: want a duration of at least 3s", v)
		}
		return d
	}
	if long() {
		return 5 * time.Minute
	}
	return 20 * time.Second
}

// TestSoak runs the store with the outbox and River's reaction and effect
// workers at a fixed rate of commands, sampling the process every second,
// and checks that what it holds levels off instead of growing with the
// work done: heap, goroutines and pool connections. Afterwards every
// command's outcome is accounted for, as in the fault tests.
//
// It reports, never asserts, speed: the achieved rate, latencies and
// River's backlog depend on the machine. FACTOS_SOAK_DURATION sets the
// duration (20s, 5m with FACTOS_RELIABILITY=long); FACTOS_SOAK_OUT names a
// file for the summary and every sample as JSON.
//
// Not parallel: the samples are of the whole process, and the suite's
// other tests, which are parallel and so wait for this one, would be in
// them.
func TestSoak(t *testing.T) {
	duration := soakDuration(t)
	ctx := context.Background()
	pool := testdb.New(t)
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	codec := tickets.NewCodec()
	reg := reactors.NewRegistry(nil)
	if err := tickets.RegisterReactions(reg, codec, pool); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, pool, reg, nil)
	store := env.Store
	schedule := tickets.ScheduleConcertHandler(codec)
	buy := tickets.BuyTicketHandler(codec)
	concert := func(k int) string { return fmt.Sprintf("soak-%d", k) }
	// Concerts 0 to 2 exist before the load starts; command k*100
	// schedules concert k+2, two hundred commands (a second) before its
	// first buyer.
	for k := range 3 {
		if _, err := eventstore.Dispatch(ctx, store, schedule, tickets.ScheduleConcert{ConcertID: concert(k), Capacity: soakCapacity}, nil); err != nil {
			t.Fatal(err)
		}
	}

	var (
		done, accepted, rejected, skipped atomic.Int64
		failMu                            sync.Mutex
		failures                          []error
		lat                               latencies
	)
	command := func(i int) {
		start := time.Now()
		k := i / soakPerConcert
		var err error
		if i%soakPerConcert == 0 {
			_, err = eventstore.Dispatch(ctx, store, schedule, tickets.ScheduleConcert{ConcertID: concert(k + 2), Capacity: soakCapacity}, nil)
			if errors.Is(err, tickets.ErrConcertExists) {
				err = nil // concert 2 was scheduled up front
			}
		} else {
			_, err = eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: concert(k), BuyerID: fmt.Sprint("b", i)},
				&eventstore.DispatchOpts{CommandID: fmt.Sprintf("soak/buy/%d", i)})
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, tickets.ErrSoldOut):
				rejected.Add(1)
				err = nil
			}
		}
		lat.add(time.Since(start))
		if err != nil {
			failMu.Lock()
			failures = append(failures, fmt.Errorf("command %d: %w", i, err))
			failMu.Unlock()
		}
		done.Add(1)
	}

	tail := startTailer(ctx, store)

	// The sampler: once a second, the runtime's heap and goroutines, the
	// pool, and River's backlog.
	var samples []soakSample
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(samplerDone)
		rm := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/gc/heap/live:bytes"}, {Name: "/sched/goroutines:goroutines"}}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
			metrics.Read(rm)
			st := pool.Stat()
			s := soakSample{At: time.Since(began).Seconds(), Commands: done.Load(),
				HeapInUse: rm[0].Value.Uint64() + rm[1].Value.Uint64(), HeapLive: rm[2].Value.Uint64(), Goroutines: rm[3].Value.Uint64(),
				PoolTotal: st.TotalConns(), PoolAcquired: st.AcquiredConns()}
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE finalized_at IS NULL`).Scan(&s.RiverBacklog); err != nil {
				s.RiverBacklog = -1
			}
			samples = append(samples, s)
		}
	}()

	// The load: a fixed pool of workers, fed at the fixed rate by a
	// ticker. A tick that finds every worker busy is skipped and counted
	// (the next tick sends the same command), so a slow machine lowers the
	// achieved rate instead of piling up goroutines.
	queue := make(chan int, soakWorkers)
	var workers sync.WaitGroup
	for range soakWorkers {
		workers.Go(func() {
			for i := range queue {
				command(i)
			}
		})
	}
	tick := time.NewTicker(time.Second / soakRate)
	deadline := time.After(duration)
	offered, ticks := 0, 0
load:
	for {
		select {
		case <-deadline:
			break load
		case <-tick.C:
		}
		ticks++
		select {
		case queue <- offered:
			offered++
		default:
			skipped.Add(1)
		}
	}
	tick.Stop()
	close(queue)
	workers.Wait()
	loadTime := time.Since(began)
	close(stopSampler)
	<-samplerDone

	// Drain: River finishes every job, the tailer catches up.
	testriver.WaitFor(t, 3*time.Minute, "River to finish every job", func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&n)
		return n == 0, err
	})
	tailed := tail.stop()

	// Every command accounted for.
	for _, err := range failures {
		t.Errorf("a command failed: %v", err)
	}
	checkSoakLog(t, ctx, pool, accepted.Load(), tailed)

	// Stability: the last third of the run holds no more heap and no more
	// goroutines than the first, within generous bounds (the first third
	// includes the warm-up, and GC timing makes the heap jumpy).
	if len(samples) < 3 {
		t.Fatalf("%d samples: the soak was too short", len(samples))
	}
	series := func(f func(s soakSample) float64) []float64 {
		out := make([]float64, len(samples))
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	const mib = 1 << 20
	stats := map[string]soakStat{
		"heap_in_use_mib": statOf(series(func(s soakSample) float64 { return float64(s.HeapInUse) / mib })),
		"heap_live_mib":   statOf(series(func(s soakSample) float64 { return float64(s.HeapLive) / mib })),
		"goroutines":      statOf(series(func(s soakSample) float64 { return float64(s.Goroutines) })),
		"pool_total":      statOf(series(func(s soakSample) float64 { return float64(s.PoolTotal) })),
		"pool_acquired":   statOf(series(func(s soakSample) float64 { return float64(s.PoolAcquired) })),
		"river_backlog":   statOf(series(func(s soakSample) float64 { return float64(s.RiverBacklog) })),
	}
	for _, b := range []struct {
		name        string
		factor, add float64
	}{
		{"heap_in_use_mib", 2, 32},
		{"heap_live_mib", 2, 32},
		{"goroutines", 1.5, 20},
	} {
		if s := stats[b.name]; s.LastThird > s.FirstThird*b.factor+b.add {
			t.Errorf("%s grows: first third %.1f, last third %.1f (bound %.1f)", b.name, s.FirstThird, s.LastThird, s.FirstThird*b.factor+b.add)
		}
	}
	// The pool may grow to its size under load; that is not a leak. A
	// leaked connection is one never released: once the work is drained,
	// none may stay acquired.
	if s := stats["pool_total"]; s.Max > float64(pool.Config().MaxConns) {
		t.Errorf("pool opened %v connections, more than its %d", s.Max, pool.Config().MaxConns)
	}
	testriver.WaitFor(t, 30*time.Second, "every pool connection to be released", func() (bool, error) {
		return pool.Stat().AcquiredConns() == 0, nil
	})

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	summary := map[string]any{
		"duration_s": round2(loadTime.Seconds()), "target_rate": soakRate, "workers": soakWorkers,
		"ticks": ticks, "skipped_ticks": skipped.Load(), "commands": done.Load(),
		"achieved_rate": round2(float64(done.Load()) / loadTime.Seconds()),
		"accepted":      accepted.Load(), "rejected": rejected.Load(), "failed": len(failures),
		"events_tailed": tailed.n,
		"latency_ms":    map[string]float64{"p50": millis(lat.quantile(.5)), "p99": millis(lat.quantile(.99)), "p999": millis(lat.quantile(.999))},
		"samples":       len(samples), "stats": stats, "gc_cycles": ms.NumGC, "gomaxprocs": runtime.GOMAXPROCS(0),
		"race": raceEnabled,
	}
	out, _ := json.Marshal(summary)
	t.Logf("soak: %s", out)
	if path := os.Getenv("FACTOS_SOAK_OUT"); path != "" {
		full, _ := json.MarshalIndent(map[string]any{"summary": summary, "samples": samples}, "", "  ")
		if err := os.WriteFile(path, full, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// tailer follows the log with ReadAfter the way a catch-up consumer does,
// polling, and checks as it goes that it never sees a position twice or
// out of order. It keeps counts, not positions, so it does not grow the
// heap the soak watches.
type tailer struct {
	stopCh chan struct{}
	result chan tailResult
}

type tailResult struct {
	n     int64
	last  eventstore.Position
	errs  []string
	reads int
}

func startTailer(ctx context.Context, store *eventstore.Store) *tailer {
	tl := &tailer{stopCh: make(chan struct{}), result: make(chan tailResult, 1)}
	go func() {
		var r tailResult
		var next eventstore.Position
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for {
			stopping := false
			select {
			case <-tl.stopCh:
				stopping = true
			case <-poll.C:
			}
			for {
				page, err := store.ReadAfter(ctx, next, &eventstore.ReadAfterOpts{Limit: 500})
				r.reads++
				if err != nil {
					r.errs = append(r.errs, err.Error())
					break
				}
				for _, rec := range page.Records {
					if rec.Position <= r.last {
						r.errs = append(r.errs, fmt.Sprintf("position %d after %d", rec.Position, r.last))
					}
					r.last = rec.Position
					r.n++
				}
				next = page.Next
				if len(page.Records) < 500 {
					break
				}
			}
			if stopping {
				tl.result <- r
				return
			}
		}
	}()
	return tl
}

// stop ends the tailer after one last read to the end of the log.
func (tl *tailer) stop() tailResult {
	close(tl.stopCh)
	return <-tl.result
}

// checkSoakLog checks the log after the soak: one ticket per accepted
// purchase, no concert oversold, a command id for each, a reaction and an
// announcement for each, and a tailer that saw every event once.
func checkSoakLog(t *testing.T, ctx context.Context, pool *pgxpool.Pool, accepted int64, tailed tailResult) {
	t.Helper()
	var sold, commands, reactions, announcements, oversold, events int64
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM factos_events WHERE type = 'TicketSold'),
		(SELECT count(*) FROM factos_commands WHERE id LIKE 'soak/buy/%'),
		(SELECT count(*) FROM factos_reactions WHERE reactor = $1),
		(SELECT count(*) FROM ticket_announcements),
		(SELECT count(*) FROM (SELECT tag FROM factos_event_tags WHERE type = 'TicketSold' AND tag LIKE 'concert:%' GROUP BY tag HAVING count(*) > $2) o),
		(SELECT count(*) FROM factos_events)`, tickets.ReactorAnnounceSales, soakCapacity).
		Scan(&sold, &commands, &reactions, &announcements, &oversold, &events)
	if err != nil {
		t.Fatal(err)
	}
	if sold != accepted || commands != accepted || reactions != accepted || announcements != accepted {
		t.Errorf("%d purchases accepted: %d tickets, %d command ids, %d reactions, %d announcements; want each equal", accepted, sold, commands, reactions, announcements)
	}
	if oversold > 0 {
		t.Errorf("%d concerts oversold", oversold)
	}
	if len(tailed.errs) > 0 || tailed.n != events {
		t.Errorf("the tailer saw %d of %d events (errors: %q)", tailed.n, events, tailed.errs[:min(len(tailed.errs), 5)])
	}
}

// raceEnabled is set by race_test.go when the race detector is on, for
// the summary: the detector slows everything and inflates the heap.
var raceEnabled = false
