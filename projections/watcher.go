package projections

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The watcher is how runners learn that there is something to do, without
// each of them asking the database: one goroutine per process runs one
// small query every PollInterval while any runner of the process is
// active, and wakes the runners when its answer changes.
//
// The query reads two numbers. The position sequence's last value moves
// when a writer draws a position, that is just before its commit: a runner
// woken by it reads the log with Store.ReadAfter, whose barrier waits for
// the writers in its scope that are still in flight. The sum of the
// checkpoint rows' generations moves when an operator resets, rebuilds or
// skips: a runner then rereads its row at once, even while it is idle or
// backing off.
//
// LISTEN/NOTIFY would wake runners sooner, but a NOTIFY in the dispatch
// transaction takes a cluster-wide lock at commit and serializes every
// notifying commit; polling costs one cheap statement per interval per
// process whatever the write rate, and nothing on the dispatch path.
// docs/projections.md has the figures.

// watchSQL reads the log's head (0 before the first append: a sequence
// that was never used reports last_value 1 with is_called false) and the
// control sum of the checkpoint rows.
const watchSQL = `SELECT
	(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM factos_events_position_seq),
	(SELECT coalesce(sum(generation), 0)::int8 FROM factos_projections)`

// watchState is one answer of the watcher's query.
type watchState struct {
	head    int64
	control int64
}

type watcher struct {
	pool     *pgxpool.Pool
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	state   watchState
	read    bool          // state holds an answer
	changed chan struct{} // closed and replaced on every change
	users   int           // active runners; the watcher polls while > 0
	demand  chan struct{} // signalled when users becomes positive
}

func newWatcher(pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) *watcher {
	return &watcher{pool: pool, interval: interval, log: log, changed: make(chan struct{}), demand: make(chan struct{}, 1)}
}

// acquire and release count the runners that need the watcher.
func (w *watcher) acquire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users++
	if w.users == 1 {
		select {
		case w.demand <- struct{}{}:
		default:
		}
	}
}

func (w *watcher) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users--
}

// snapshot returns the last answer and a channel closed when the next one
// differs.
func (w *watcher) snapshot() (watchState, bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state, w.read, w.changed
}

// run polls until ctx ends.
func (w *watcher) run(ctx context.Context) {
	var lastErr time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		w.mu.Lock()
		idle := w.users == 0
		w.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				return
			case <-w.demand:
			}
		}
		var st watchState
		if err := w.pool.QueryRow(ctx, watchSQL).Scan(&st.head, &st.control); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The runners report the database's state themselves; one
			// line a minute is enough here.
			if time.Since(lastErr) > time.Minute {
				lastErr = time.Now()
				w.log.WarnContext(ctx, "projections: watcher cannot read the log's head", "error", err)
			}
		} else {
			w.mu.Lock()
			if !w.read || st != w.state {
				w.state, w.read = st, true
				close(w.changed)
				w.changed = make(chan struct{})
			}
			w.mu.Unlock()
		}
		timer.Reset(w.interval)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}
