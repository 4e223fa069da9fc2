package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factos-go/factos/eventstore"
)

// A cell runs a workload on `clients` goroutines, each issuing one command
// after the other (a closed loop: a client's next command starts when its
// previous one returned). A warm-up phase comes first and is thrown away;
// then every command that returns within the measured window counts, and
// the window's length is the divisor. Commands still running when the
// window closes are let finish but not counted.

// command runs one command for a client. prefix and seq make names unique
// across every phase that ran in the database. It returns the command's
// kind ("" when the workload has one) and the dispatch's error.
type command func(ctx context.Context, client, seq int, prefix string) (kind string, err error)

// workload is what a scenario runs in a cell.
type workload struct {
	// prepare, if set, readies the database for a phase of length span
	// (the hot scenario schedules the concerts it will need).
	prepare func(ctx context.Context, span time.Duration) error
	command command
	// close, if set, releases what the workload started (a Temporal
	// worker) when the scenario ends.
	close func()
	// minDuration, if longer than Config.Duration, is the measured
	// window's length: a window must hold many of the workload's commands.
	minDuration time.Duration
	// othersWork is set when other processes do part of the workload (the
	// Temporal server): their CPU is no disturbance.
	othersWork bool
}

// clientStats are one client's counts over a phase.
type clientStats struct {
	lat        []time.Duration
	kinds      map[string][]time.Duration
	dispatches int64
	committed  int64
	rejected   int64
	rejections map[string]int64
	conflicts  int64
	errors     int64
	firstErr   error
	trips      tripCounter
	reasons    map[string]int64
}

// runner runs cells for a run.
type runner struct {
	cfg *Config
	cpu *cpuMeter
}

// measure measures a cell: a warm-up, then a measured window. A window in
// which other processes kept more than MaxOther cores busy is measured
// again, up to Remeasure times. It returns every window, the disturbed ones
// first, each marked.
func (r *runner) measure(ctx context.Context, t *target, w workload, clients int) ([]Measurement, error) {
	var out []Measurement
	for try := 0; ; try++ {
		m, err := r.measureOnce(ctx, t, w, clients)
		if err != nil {
			return out, err
		}
		// Without the server's own CPU figure, Other would include it.
		m.Disturbed = r.cfg.MaxOther > 0 && m.CPU.Server > 0 && m.CPU.Other > r.cfg.MaxOther && !w.othersWork
		out = append(out, m)
		if !m.Disturbed || try >= r.cfg.Remeasure {
			return out, nil
		}
		fmt.Fprintf(r.cfg.Log, "  disturbed: other processes kept %.2f cores busy; measuring %s again\n", m.CPU.Other, t.name)
	}
}

// measureOnce runs the warm-up and the measured window of one cell.
func (r *runner) measureOnce(ctx context.Context, t *target, w workload, clients int) (Measurement, error) {
	if r.cfg.Warmup > 0 {
		if _, _, err := r.phase(ctx, t, w, clients, r.cfg.Warmup, nil); err != nil {
			return Measurement{}, err
		}
	}
	waits, err := startWaitSampler(ctx, t.url, r.cfg.SampleInterval)
	if err != nil {
		return Measurement{}, err
	}
	defer waits.close()

	var m Measurement
	win := &window{}
	stats, elapsed, err := r.phase(ctx, t, w, clients, max(r.cfg.Duration, w.minDuration), &phaseHooks{
		window: win,
		start: func() (cpuSample, error) {
			// After the workload's prepare, so that neither its statements
			// nor the warm-up's count.
			waits.reset()
			t.stmts.reset(ctx)
			return r.cpu.sample(), nil
		},
		end: func(start cpuSample) {
			m.CPU = r.cpu.between(start, r.cpu.sample())
			m.Waits = waits.result()
		},
	})
	if err != nil {
		return Measurement{}, err
	}
	m.TopStatements = t.stmts.top(ctx, 8)
	m.Seconds = elapsed.Seconds()
	m.Retries = win.retries.Load()
	m.fill(stats)
	return m, nil
}

// phaseHooks make a phase a measured one.
type phaseHooks struct {
	window *window
	start  func() (cpuSample, error)
	end    func(start cpuSample)
}

// phase runs the workload for d and returns the clients' stats and the
// phase's length. A measured phase (hooks set) also runs until its clients
// have decided Config.MinCommands commands, but no longer than maxWindow:
// on a loaded machine a short window could otherwise count nothing.
func (r *runner) phase(ctx context.Context, t *target, w workload, clients int, d time.Duration, hooks *phaseHooks) ([]*clientStats, time.Duration, error) {
	t.cells++
	prefix := fmt.Sprintf("p%d", t.cells)
	if w.prepare != nil {
		if err := w.prepare(ctx, d); err != nil {
			return nil, 0, fmt.Errorf("error preparing the workload: %w", err)
		}
	}
	minCommands := int64(0)
	if hooks != nil {
		minCommands = int64(r.cfg.MinCommands)
	}
	stats := make([]*clientStats, clients)
	release := make(chan struct{})
	var (
		closed  atomic.Bool
		decided atomic.Int64
		reached = make(chan struct{})
		wg      sync.WaitGroup
	)
	if minCommands <= 0 {
		close(reached)
	}
	for i := range clients {
		cs := &clientStats{kinds: map[string][]time.Duration{}, rejections: map[string]int64{}, reasons: map[string]int64{}}
		stats[i] = cs
		wg.Go(func() {
			<-release
			var trips tripCounter
			reasons := &retryReasons{counts: map[string]int64{}}
			cctx := withReasons(withCounter(ctx, &trips), reasons)
			for seq := 0; ctx.Err() == nil; seq++ {
				trips = tripCounter{}
				clear(reasons.counts)
				t0 := time.Now()
				kind, err := w.command(cctx, i, seq, prefix)
				t1 := time.Now()
				if closed.Load() {
					return // returned after the window closed: not counted
				}
				if cs.record(kind, t1.Sub(t0), err, &trips, reasons.counts) && decided.Add(1) == minCommands {
					close(reached)
				}
			}
		})
	}
	var start cpuSample
	if hooks != nil {
		var err error
		if start, err = hooks.start(); err != nil {
			return nil, 0, err
		}
	}
	begin := time.Now()
	if hooks != nil {
		hooks.window.start = begin
		t.obs.w.Store(hooks.window)
	}
	close(release)
	// The window closes after d and once MinCommands were decided, or at
	// maxWindow whatever was decided; the window's CPU and wait samples
	// are taken then, not when the last straggler returns.
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	limit := time.NewTimer(max(maxWindow, d) - time.Since(begin))
	select {
	case <-reached:
	case <-limit.C:
	case <-ctx.Done():
	}
	limit.Stop()
	closed.Store(true)
	elapsed := time.Since(begin)
	if hooks != nil {
		hooks.window.closed.Store(true)
		hooks.end(start)
	}
	wg.Wait()
	t.obs.w.Store(nil)
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return stats, elapsed, nil
}

// maxWindow bounds how long a measured window waits for Config.MinCommands:
// a cell whose commands all fail must still end.
const maxWindow = 2 * time.Minute

// record counts one dispatch and reports whether it decided its command
// (committed or rejected).
func (cs *clientStats) record(kind string, d time.Duration, err error, trips *tripCounter, reasons map[string]int64) bool {
	cs.dispatches++
	cs.trips.trips += trips.trips
	cs.trips.statements += trips.statements
	cs.trips.prepares += trips.prepares
	for k, n := range reasons {
		cs.reasons[k] += n
	}
	var rejected *eventstore.RejectedError
	switch {
	case err == nil:
		cs.committed++
	case errors.As(err, &rejected):
		cs.rejected++
		cs.rejections[rejected.Err.Error()]++
	case errors.Is(err, eventstore.ErrConflict):
		cs.conflicts++
		return false
	default:
		cs.errors++
		if cs.firstErr == nil {
			cs.firstErr = err
		}
		return false
	}
	// Latency counts decided commands only: a conflict or an error is not
	// a command served.
	cs.lat = append(cs.lat, d)
	if kind != "" {
		cs.kinds[kind] = append(cs.kinds[kind], d)
	}
	return true
}

// fill adds the clients' stats up into m. m.Seconds and m.Retries must be
// set.
func (m *Measurement) fill(stats []*clientStats) {
	var lat []time.Duration
	kinds := map[string][]time.Duration{}
	for _, cs := range stats {
		m.Dispatches += cs.dispatches
		m.Committed += cs.committed
		m.Rejected += cs.rejected
		m.Conflicts += cs.conflicts
		m.Errors += cs.errors
		if cs.firstErr != nil && m.FirstError == "" {
			m.FirstError = cs.firstErr.Error()
		}
		for k, n := range cs.rejections {
			if m.Rejections == nil {
				m.Rejections = map[string]int64{}
			}
			m.Rejections[k] += n
		}
		for k, n := range cs.reasons {
			if m.RetryReasons == nil {
				m.RetryReasons = map[string]int64{}
			}
			m.RetryReasons[k] += n
		}
		m.RoundTrips += cs.trips.trips
		m.Statements += cs.trips.statements
		m.Prepares += cs.trips.prepares
		lat = append(lat, cs.lat...)
		for k, d := range cs.kinds {
			kinds[k] = append(kinds[k], d...)
		}
	}
	m.Commands = m.Committed + m.Rejected
	if m.Seconds > 0 {
		m.PerSecond = float64(m.Commands) / m.Seconds
	}
	if m.Dispatches > 0 {
		m.RetriesPerCommand = float64(m.Retries) / float64(m.Dispatches)
		m.RoundTripsPer = float64(m.RoundTrips) / float64(m.Dispatches)
		m.StatementsPer = float64(m.Statements) / float64(m.Dispatches)
	}
	m.Latency = latencyOf(lat)
	if len(kinds) > 1 {
		m.Kinds = map[string]KindStats{}
		for k, d := range kinds {
			m.Kinds[k] = KindStats{Commands: int64(len(d)), PerSecond: float64(len(d)) / m.Seconds, Latency: latencyOf(d)}
		}
	}
}
