package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/projections"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// note is the test domain's one event: its type and its body as stored.
type note struct {
	Type string
	Body string
}

// noteCodec stores a note's body as its data. Events of type "Garbled"
// cannot be decoded.
type noteCodec struct{}

func (noteCodec) Encode(n note) (eventstore.EventData, error) {
	return eventstore.EventData{Type: n.Type, Data: []byte(n.Body)}, nil
}

func (noteCodec) Decode(r eventstore.RawRecord) (note, error) {
	if r.Type == "Garbled" {
		return note{}, errors.New("garbled bytes")
	}
	return note{Type: r.Type, Body: string(r.Data)}, nil
}

// viewSchema is the test view: one row per applied event, in the order
// applied, without any uniqueness, so that an event applied twice shows
// as two rows.
const viewSchema = `CREATE TABLE IF NOT EXISTS test_view (
	seq        bigserial PRIMARY KEY,
	projection text   NOT NULL,
	position   bigint NOT NULL,
	type       text   NOT NULL,
	applier    text   NOT NULL
)`

// bundle is one test's database, store and helpers.
type bundle struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	store *eventstore.Store
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := testdb.New(t)
	if _, err := pool.Exec(context.Background(), viewSchema); err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{t: t, ctx: context.Background(), pool: pool, store: store}
}

// spec describes a test projection.
type spec struct {
	name  string
	query eventstore.Query
	batch int
	// applier names the client applying, in the view's rows.
	applier string
	// fail, if set, makes Apply fail on a record.
	fail func(ctx context.Context, n note) error
	// applied counts the events applied through this spec.
	applied *atomic.Int64
}

// projection returns the test projection for s: it inserts one row per
// record and can be reset from any position.
func (s spec) projection() projections.Projection[note] {
	return projections.Projection[note]{
		Name:      s.name,
		Query:     s.query,
		Codec:     noteCodec{},
		BatchSize: s.batch,
		Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[note]) error {
			positions := make([]int64, len(records))
			types := make([]string, len(records))
			for i, r := range records {
				if s.fail != nil {
					if err := s.fail(ctx, r.Event); err != nil {
						return err
					}
				}
				positions[i], types[i] = int64(r.Position), r.Type
			}
			_, err := tx.Exec(ctx, `INSERT INTO test_view (projection, position, type, applier)
				SELECT $1, p, t, $4 FROM unnest($2::int8[], $3::text[]) AS u(p, t)`, s.name, positions, types, s.applier)
			if err == nil && s.applied != nil {
				s.applied.Add(int64(len(records)))
			}
			return err
		},
		Reset: func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error {
			_, err := tx.Exec(ctx, `DELETE FROM test_view WHERE projection = $1 AND position > $2`, s.name, int64(from))
			return err
		},
	}
}

// testConfig is a Config with short intervals, for tests.
func testConfig(owner string) *projections.Config {
	return &projections.Config{
		Owner:         owner,
		LeaseInterval: 100 * time.Millisecond,
		PollInterval:  5 * time.Millisecond,
		RetryMin:      10 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		WaitTimeout:   time.Minute,
	}
}

// client registers specs and returns a client, stopped when the test ends.
func (b *bundle) client(cfg *projections.Config, specs ...spec) *projections.Client {
	b.t.Helper()
	reg := projections.NewRegistry()
	for _, s := range specs {
		if err := projections.AddProjection(reg, s.projection()); err != nil {
			b.t.Fatal(err)
		}
	}
	c, err := projections.New(b.store, reg, cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

// start starts c until the test ends.
func (b *bundle) start(c *projections.Client) {
	b.t.Helper()
	if err := c.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
}

// appendNotes appends one event per type to a new stream, and returns
// their positions.
func (b *bundle) appendNotes(stream string, hooks []eventstore.Hook, types ...string) ([]eventstore.Position, error) {
	events := make([]eventstore.EventData, len(types))
	for i, typ := range types {
		events[i] = eventstore.EventData{Type: typ, Tags: []string{"stream:" + stream}, Data: []byte(stream)}
	}
	res, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: stream, Events: events, Hooks: hooks})
	if err != nil {
		return nil, err
	}
	out := make([]eventstore.Position, len(res.Records))
	for i, r := range res.Records {
		out[i] = r.Position
	}
	return out, nil
}

// head is the log's last drawn position.
func (b *bundle) head() eventstore.Position {
	b.t.Helper()
	var h int64
	if err := b.pool.QueryRow(b.ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM factos_events_position_seq`).Scan(&h); err != nil {
		b.t.Fatal(err)
	}
	return eventstore.Position(h)
}

// checkView checks the view of a projection against the log: every event
// matching q, and not skipped, applied exactly once, in position order.
func (b *bundle) checkView(name string, q eventstore.Query) []eventstore.Position {
	b.t.Helper()
	var applied []int64
	if err := b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg(position ORDER BY seq), '{}') FROM test_view WHERE projection = $1`, name).Scan(&applied); err != nil {
		b.t.Fatal(err)
	}
	for i := 1; i < len(applied); i++ {
		if applied[i] <= applied[i-1] {
			b.t.Fatalf("%s: position %d applied after %d: repeated or out of order", name, applied[i], applied[i-1])
		}
	}
	var skipped []int64
	if err := b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg(position), '{}') FROM factos_projection_skips WHERE projection = $1`, name).Scan(&skipped); err != nil {
		b.t.Fatal(err)
	}
	var want []int64
	rows, err := b.pool.Query(b.ctx, `SELECT position, type, tags FROM factos_events ORDER BY position`)
	if err != nil {
		b.t.Fatal(err)
	}
	for rows.Next() {
		var p int64
		var typ string
		var tags []string
		if err := rows.Scan(&p, &typ, &tags); err != nil {
			b.t.Fatal(err)
		}
		if q.Matches(typ, tags) && !slices.Contains(skipped, p) {
			want = append(want, p)
		}
	}
	if err := rows.Err(); err != nil {
		b.t.Fatal(err)
	}
	if !slices.Equal(applied, want) {
		missing, extra := diff(want, applied), diff(applied, want)
		b.t.Fatalf("%s: view has %d events, log %d; missing %v, extra %v", name, len(applied), len(want), head(missing), head(extra))
	}
	out := make([]eventstore.Position, len(applied))
	for i, p := range applied {
		out[i] = eventstore.Position(p)
	}
	return out
}

func diff(a, b []int64) []int64 {
	var out []int64
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

func head(s []int64) []int64 { return s[:min(len(s), 10)] }

// writers append in the background until halted.
type writers struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	writes atomic.Int64
	err    atomic.Pointer[error]
}

// startWriters starts four writers, each appending one event of each of
// types per append, to a new stream each time, with hooks. Appends that a
// hook rolls back on purpose do not count.
func (b *bundle) startWriters(hooks []eventstore.Hook, types ...string) *writers {
	w := &writers{}
	for k := range 4 {
		w.wg.Go(func() {
			for i := 0; !w.stop.Load(); i++ {
				_, err := b.appendNotes(fmt.Sprintf("w%d-%d", k, i), hooks, types...)
				switch {
				case errors.Is(err, errRolledBack):
				case err != nil:
					w.err.CompareAndSwap(nil, &err)
					return
				default:
					w.writes.Add(1)
				}
			}
		})
	}
	b.t.Cleanup(func() { w.stop.Store(true); w.wg.Wait() })
	return w
}

// waitWrites waits until n appends have been made.
func (w *writers) waitWrites(t *testing.T, n int64) {
	t.Helper()
	testriver.WaitFor(t, time.Minute, fmt.Sprintf("%d appends", n), func() (bool, error) {
		if err := w.err.Load(); err != nil {
			return false, *err
		}
		return w.writes.Load() >= n, nil
	})
}

// halt stops the writers and fails the test if one failed.
func (w *writers) halt(t *testing.T) {
	t.Helper()
	w.stop.Store(true)
	w.wg.Wait()
	if err := w.err.Load(); err != nil {
		t.Fatal(*err)
	}
}

// race runs f(i) for i in [0, n) on k goroutines and returns the errors.
func race(n, k int, f func(i int) error) []error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range k {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	return errs
}

func firstError(errs []error) error {
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
	}
	return nil
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
