package bench

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Round trips are counted by a pgx tracer set on every benchmark pool's
// ConnConfig. What counts as one round trip:
//
//   - every Exec, Query and QueryRow (TraceQueryStart), which includes the
//     BEGIN, COMMIT and ROLLBACK that pgx sends as Exec;
//   - every batch (TraceBatchStart), however many statements it holds:
//     pgx pipelines them and waits once;
//   - every statement preparation: a Prepare (TracePrepareEnd, unless it was
//     already prepared), and a batch that prepares statements the
//     connection has not seen, which pgx does in a pipeline of its own
//     before the batch.
//
// Not counted: connection setup and the liveness ping pgxpool sends on a
// connection that sat idle for a second; neither happens once a cell is
// warm. Statements are counted too: each query, and each statement of a
// batch.
//
// A dispatch's counts land in the tripCounter its context carries, so they
// are exact per dispatch however many run at once. Statements sent with a
// context without a counter (setup, loading) are not counted.

// tripCounter counts what one client sends. One goroutine uses it at a
// time: pgx calls the tracer on the goroutine that runs the statement.
type tripCounter struct {
	trips, statements, prepares int64
}

type tripKey struct{}

func withCounter(ctx context.Context, c *tripCounter) context.Context {
	return context.WithValue(ctx, tripKey{}, c)
}

func counterFrom(ctx context.Context) *tripCounter {
	c, _ := ctx.Value(tripKey{}).(*tripCounter)
	return c
}

// tracer implements pgx.QueryTracer, pgx.BatchTracer and pgx.PrepareTracer.
type tracer struct {
	// seen holds, per connection, the statements prepared on it, to tell a
	// batch that prepares from one that does not (pgx does not say).
	seen sync.Map // *pgx.Conn -> map[string]bool, used by the conn's holder only

	// capture, when set, collects the first sample of every statement sent
	// under a counted context, for EXPLAIN.
	capture atomic.Pointer[capture]
}

var (
	_ pgx.QueryTracer   = (*tracer)(nil)
	_ pgx.BatchTracer   = (*tracer)(nil)
	_ pgx.PrepareTracer = (*tracer)(nil)
)

func (t *tracer) conn(c *pgx.Conn) map[string]bool {
	if m, ok := t.seen.Load(c); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	t.seen.Store(c, m)
	return m
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if c := counterFrom(ctx); c != nil {
		c.trips++
		c.statements++
		t.sample(data.SQL, data.Args)
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer.
func (t *tracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	seen := t.conn(conn)
	prepares := false
	for _, q := range data.Batch.QueuedQueries {
		if !seen[q.SQL] {
			seen[q.SQL] = true
			prepares = true
		}
	}
	if c := counterFrom(ctx); c != nil {
		c.trips++
		if prepares {
			c.trips++
			c.prepares++
		}
	}
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (t *tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if c := counterFrom(ctx); c != nil {
		c.statements++
		t.sample(data.SQL, data.Args)
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TracePrepareStart implements pgx.PrepareTracer.
func (t *tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	t.conn(conn)[data.SQL] = true
	return ctx
}

// TracePrepareEnd implements pgx.PrepareTracer.
func (t *tracer) TracePrepareEnd(ctx context.Context, _ *pgx.Conn, data pgx.TracePrepareEndData) {
	if c := counterFrom(ctx); c != nil && !data.AlreadyPrepared {
		c.trips++
		c.prepares++
	}
}

func (t *tracer) sample(sql string, args []any) {
	if c := t.capture.Load(); c != nil {
		c.add(sql, args)
	}
}

// capture keeps the first arguments seen for every statement text, in the
// order the statements were first sent.
type capture struct {
	mu    sync.Mutex
	order []string
	args  map[string][]any
}

func newCapture() *capture { return &capture{args: map[string][]any{}} }

func (c *capture) add(sql string, args []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.args[sql]; ok {
		return
	}
	c.order = append(c.order, sql)
	c.args[sql] = append([]any(nil), args...)
}
