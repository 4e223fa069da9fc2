package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Evidence gathered while a cell runs, to explain its numbers: what the
// server's backends were waiting for, which statements took the time, and
// how the statements of a dispatch were planned.

// Wait is one kind of backend state, as sampled from pg_stat_activity.
type Wait struct {
	// State is the backend's state ("active", "idle in transaction").
	State string `json:"state"`
	// Event is wait_event_type:wait_event, or "CPU" for an active backend
	// that waits for nothing (running or runnable).
	Event string `json:"event"`
	// Backends is how many backends were in this state on average over
	// the samples.
	Backends float64 `json:"backends"`
}

// waitSampler samples pg_stat_activity for the backends of one database
// on a connection of its own, until stopped.
type waitSampler struct {
	interval time.Duration
	conn     *pgx.Conn
	mu       sync.Mutex
	counts   map[[2]string]int
	samples  int
	stop     chan struct{}
	done     chan struct{}
}

// waitSQL counts the database's busy backends by state and wait event.
// "idle in transaction" backends wait for their client in the middle of a
// transaction, holding its locks: for a dispatch, a round trip.
const waitSQL = `SELECT state, coalesce(wait_event_type || ':' || wait_event, CASE WHEN state = 'active' THEN 'CPU' ELSE 'none' END), count(*)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND state IN ('active', 'idle in transaction')
GROUP BY 1, 2`

func startWaitSampler(ctx context.Context, url string, interval time.Duration) (*waitSampler, error) {
	if interval <= 0 {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("error connecting the wait sampler: %w", err)
	}
	w := &waitSampler{interval: interval, conn: conn, counts: map[[2]string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(context.WithoutCancel(ctx))
	return w, nil
}

func (w *waitSampler) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		rows, err := w.conn.Query(ctx, waitSQL)
		if err != nil {
			return
		}
		sample := map[[2]string]int{}
		for rows.Next() {
			var state, event string
			var n int
			if rows.Scan(&state, &event, &n) == nil {
				sample[[2]string{state, event}] += n
			}
		}
		if rows.Err() != nil {
			return
		}
		w.mu.Lock()
		w.samples++
		for k, n := range sample {
			w.counts[k] += n
		}
		w.mu.Unlock()
	}
}

// reset forgets the samples so far (the warm-up's).
func (w *waitSampler) reset() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts = map[[2]string]int{}
	w.samples = 0
}

// result returns the waits seen since the last reset, most frequent first.
func (w *waitSampler) result() []Wait {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.samples == 0 {
		return nil
	}
	out := make([]Wait, 0, len(w.counts))
	for k, n := range w.counts {
		out = append(out, Wait{State: k[0], Event: k[1], Backends: float64(n) / float64(w.samples)})
	}
	slices.SortFunc(out, func(a, b Wait) int {
		if a.Backends != b.Backends {
			if a.Backends > b.Backends {
				return -1
			}
			return 1
		}
		return strings.Compare(a.State+a.Event, b.State+b.Event)
	})
	return out
}

func (w *waitSampler) close() {
	if w == nil {
		return
	}
	close(w.stop)
	<-w.done
	_ = w.conn.Close(context.Background())
}

// Statement is one statement's share of a cell, from pg_stat_statements.
type Statement struct {
	Query string `json:"query"`
	Calls int64  `json:"calls"`
	// TotalMs and MeanMs are execution time inside the server, not
	// counting the time the statement waited in the network or client.
	TotalMs float64 `json:"total_ms"`
	MeanMs  float64 `json:"mean_ms"`
	Rows    int64   `json:"rows"`
}

// statements reads pg_stat_statements for one database. It is enabled when
// the server loaded the module and the extension could be created.
type statements struct {
	conn *pgx.Conn
}

func openStatements(ctx context.Context, url string) *statements {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil
	}
	var libs string
	if err := conn.QueryRow(ctx, "SHOW shared_preload_libraries").Scan(&libs); err != nil || !strings.Contains(libs, "pg_stat_statements") {
		_ = conn.Close(ctx)
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		_ = conn.Close(ctx)
		return nil
	}
	return &statements{conn: conn}
}

// reset clears the statistics of the whole server: cells run one at a time.
func (s *statements) reset(ctx context.Context) {
	if s != nil {
		_, _ = s.conn.Exec(ctx, "SELECT pg_stat_statements_reset()")
	}
}

// top returns the statements of this database that took the most time.
func (s *statements) top(ctx context.Context, n int) []Statement {
	if s == nil {
		return nil
	}
	rows, err := s.conn.Query(ctx, `SELECT query, calls, total_exec_time, mean_exec_time, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_%'
ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Statement, error) {
		var st Statement
		err := row.Scan(&st.Query, &st.Calls, &st.TotalMs, &st.MeanMs, &st.Rows)
		st.Query = oneLine(st.Query, 160)
		return st, err
	})
	if err != nil {
		return nil
	}
	return out
}

func (s *statements) close() {
	if s != nil {
		_ = s.conn.Close(context.Background())
	}
}

// Plan is the EXPLAIN (ANALYZE, BUFFERS) of one statement a dispatch sent,
// run with the arguments the dispatch used.
type Plan struct {
	Scenario string `json:"scenario"`
	Strategy string `json:"strategy"`
	// Events stored when the plan was taken.
	Events int64  `json:"events"`
	SQL    string `json:"sql"`
	// ExecutionMs is the plan's "Execution Time".
	ExecutionMs float64 `json:"execution_ms"`
	Text        string  `json:"text"`
}

// explain runs EXPLAIN ANALYZE on every captured statement in a transaction
// that is rolled back, so the INSERT of a dispatch leaves nothing behind
// (but the positions it draws). Transaction control statements are skipped.
func explain(ctx context.Context, url string, c *capture) ([]Plan, error) {
	if c == nil {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	c.mu.Lock()
	order := slices.Clone(c.order)
	c.mu.Unlock()
	var plans []Plan
	for _, sql := range order {
		switch strings.ToLower(strings.Fields(sql)[0]) {
		case "begin", "commit", "rollback":
			continue
		}
		p, err := explainOne(ctx, conn, sql, c.args[sql])
		if err != nil {
			return nil, fmt.Errorf("error explaining %q: %w", oneLine(sql, 80), err)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func explainOne(ctx context.Context, conn *pgx.Conn, sql string, args []any) (Plan, error) {
	p := Plan{SQL: sql}
	if len(args) >= 7 && strings.Contains(sql, "INSERT INTO factos_events ") {
		// The dispatch committed these events: the same ids and stream
		// revisions would now fail the unique constraints. Insert new ids
		// into a stream of their own instead ($1 and $7 of eventsql.Insert).
		args = slices.Clone(args)
		if ids, ok := args[0].([][16]byte); ok {
			fresh := make([][16]byte, len(ids))
			for i := range fresh {
				fresh[i] = uuid.Must(uuid.NewV7())
			}
			args[0] = fresh
		}
		if stream, ok := args[6].(string); ok {
			args[6] = stream + "-explain"
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return p, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to keep
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
	if err != nil {
		return p, err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return p, err
	}
	p.Text = strings.Join(lines, "\n")
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Execution Time: "); ok {
			_, _ = fmt.Sscanf(v, "%f", &p.ExecutionMs)
		}
	}
	return p, nil
}

// oneLine squeezes whitespace and cuts s to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
