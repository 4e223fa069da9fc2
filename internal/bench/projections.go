package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/projections"
)

// The projection scenarios measure the projections package: how fast a
// projection catches up on a stored log (each batch applied and
// checkpointed in one transaction) at several batch sizes; how long after
// its commit an event is in a live projection's view, at fixed write
// rates; and what running projections costs the writers.

// strategyProjections is keys with three projections running in the
// benchmark process, on the same database: users (every UserRegistered
// into a table), type_counts (every event, counted by type) and the
// ticket domain's concert_sales (which the workload does not match).
const strategyProjections = "keys+3 projections"

// projectionsSchema are the views of the projections scenario.
var projectionsSchema = []string{
	`CREATE TABLE IF NOT EXISTS bench_users (user_id text PRIMARY KEY, username text NOT NULL, position bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS bench_type_counts (type text PRIMARY KEY, events bigint NOT NULL)`,
}

// usersProjection writes every registered user to bench_users.
func usersProjection(codec eventstore.Codec[tickets.Event]) projections.Projection[tickets.Event] {
	return projections.Projection[tickets.Event]{
		Name:  "users",
		Query: eventstore.NewQuery(eventstore.Types(tickets.TypeUserRegistered)),
		Codec: codec,
		Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[tickets.Event]) error {
			var ids, names []string
			var positions []int64
			for _, r := range records {
				u := r.Event.(tickets.UserRegistered)
				ids, names, positions = append(ids, u.UserID), append(names, u.Username), append(positions, int64(r.Position))
			}
			_, err := tx.Exec(ctx, `INSERT INTO bench_users (user_id, username, position)
				SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) ON CONFLICT (user_id) DO NOTHING`, ids, names, positions)
			return err
		},
	}
}

// typeCountsProjection counts every event by type: it reads the whole log.
func typeCountsProjection(codec eventstore.Codec[tickets.Event]) projections.Projection[tickets.Event] {
	return projections.Projection[tickets.Event]{
		Name:  "type_counts",
		Query: eventstore.AllEvents(),
		Codec: codec,
		Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[tickets.Event]) error {
			counts := map[string]int64{}
			for _, r := range records {
				counts[r.Type]++
			}
			var types []string
			var n []int64
			for _, typ := range slices.Sorted(maps.Keys(counts)) {
				types, n = append(types, typ), append(n, counts[typ])
			}
			_, err := tx.Exec(ctx, `INSERT INTO bench_type_counts (type, events) SELECT * FROM unnest($1::text[], $2::int8[])
				ON CONFLICT (type) DO UPDATE SET events = bench_type_counts.events + excluded.events`, types, n)
			return err
		},
	}
}

// startProjections creates the views and starts a client running the
// given projections on t's store; stop stops it.
func startProjections(ctx context.Context, t *target, cfg *projections.Config, ps ...projections.Projection[tickets.Event]) (c *projections.Client, stop func() error, err error) {
	if err := migrateViews(ctx, t.pool); err != nil {
		return nil, nil, err
	}
	reg := projections.NewRegistry()
	for _, p := range ps {
		if err := projections.AddProjection(reg, p); err != nil {
			return nil, nil, err
		}
	}
	if c, err = projections.New(t.store, reg, cfg); err != nil {
		return nil, nil, err
	}
	// The client's own context: not the run's, whose cancellation would
	// stop it before Stop could.
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, nil, err
	}
	return c, func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.Stop(sctx)
	}, nil
}

func migrateViews(ctx context.Context, pool *pgxpool.Pool) error {
	if err := tickets.Migrate(ctx, pool); err != nil {
		return err
	}
	for _, sql := range projectionsSchema {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("error creating the views: %w", err)
		}
	}
	return nil
}

// projectionsWorkload is the workload of the projections scenario: the
// disjoint command, with the three projections running for the
// projections pseudo-strategy.
func projectionsWorkload(ctx context.Context, t *target) (workload, error) {
	w := workload{command: disjoint(t)}
	if t.name != strategyProjections {
		return w, nil
	}
	_, stop, err := startProjections(ctx, t, nil, usersProjection(t.codec), typeCountsProjection(t.codec), tickets.ConcertSalesProjection(t.codec))
	if err != nil {
		return w, err
	}
	w.close = func() { _ = stop() }
	return w, nil
}

// ProjectionCatchUp is one projection catching up from position 0 on a
// stored log, at one batch size: the ticket domain's concert_sales, which
// folds every TicketSold into per-concert rows.
type ProjectionCatchUp struct {
	Projection string `json:"projection"`
	BatchSize  int    `json:"batch_size"`
	// Stored is the log's head when the projection started.
	Stored int64 `json:"stored"`
	// Events applied, and batches committed (each with its checkpoint).
	Events  int64   `json:"events"`
	Batches int64   `json:"batches"`
	Seconds float64 `json:"seconds"`
	// EventsPerS are events applied per second; PositionsPerS log
	// positions passed per second.
	EventsPerS    float64 `json:"events_per_s"`
	PositionsPerS float64 `json:"positions_per_s"`
	Errors        int64   `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
}

// ProjectionLag is a live projection at one offered write rate: how long
// after its commit each event was in the view.
type ProjectionLag struct {
	// Rate is the offered rate, commands per second; PerSecond the
	// achieved one.
	Rate      int     `json:"rate_per_s"`
	PerSecond float64 `json:"commands_per_s"`
	Commands  int64   `json:"commands"`
	Seconds   float64 `json:"seconds"`
	// PollMs is the watcher's poll interval (the worker's default).
	PollMs float64 `json:"poll_ms"`
	// Dispatch is the dispatch's latency; Lag runs from the dispatch's
	// return (its commit) to WaitFor's, in the process running the
	// projection.
	Dispatch   Latency `json:"dispatch"`
	Lag        Latency `json:"lag"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// projectionCatchUp runs the projection catch-up scenario: one template
// with CatchUpEvents events, a fresh clone of it per batch size.
func (r *runner) projectionCatchUp(ctx context.Context, res *Results) (err error) {
	fmt.Fprintf(r.cfg.Log, "projection catch-up: loading %d events\n", r.cfg.CatchUpEvents)
	tmpl, drop, err := r.template(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		if err := migrateViews(ctx, pool); err != nil {
			return err
		}
		return loadHistory(ctx, pool, r.cfg.CatchUpEvents, "p")
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop()) }()
	for _, size := range r.cfg.ProjectionBatchSizes {
		cu, err := r.projectionCatchUpOnce(ctx, tmpl, size)
		if err != nil {
			return fmt.Errorf("batch size %d: %w", size, err)
		}
		res.ProjectionCatchUp = append(res.ProjectionCatchUp, cu)
		fmt.Fprintf(r.cfg.Log, "projection catch-up %s batch=%-5d %9.0f events/s  %9.0f positions/s  %d events in %d batches, %.2fs\n",
			cu.Projection, size, cu.EventsPerS, cu.PositionsPerS, cu.Events, cu.Batches, cu.Seconds)
	}
	return nil
}

func (r *runner) projectionCatchUpOnce(ctx context.Context, tmpl string, size int) (cu ProjectionCatchUp, err error) {
	cu = ProjectionCatchUp{Projection: tickets.ProjectionConcertSales, BatchSize: size}
	url, drop, err := r.cfg.Databases.Clone(ctx, tmpl)
	if err != nil {
		return cu, err
	}
	t, err := openTarget(ctx, r.cfg, keys, url, drop, 8)
	if err != nil {
		return cu, err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	if err := t.pool.QueryRow(ctx, "SELECT last_value FROM factos_events_position_seq").Scan(&cu.Stored); err != nil {
		return cu, err
	}
	preg := prometheus.NewRegistry()
	m, err := projections.NewMetrics(preg)
	if err != nil {
		return cu, err
	}
	p := tickets.ConcertSalesProjection(t.codec)
	p.BatchSize = size
	start := time.Now()
	c, stop, err := startProjections(ctx, t, &projections.Config{Metrics: m}, p)
	if err != nil {
		return cu, err
	}
	defer func() { err = errors.Join(err, stop()) }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := c.WaitFor(wctx, p.Name, eventstore.Position(cu.Stored)); err != nil {
		cu.Errors, cu.FirstError = 1, err.Error()
	}
	cu.Seconds = time.Since(start).Seconds()
	st, err := c.StatusOf(ctx, p.Name)
	if err != nil {
		return cu, err
	}
	cu.Events = st.Applied
	if st.State == projections.StateStuck {
		cu.Errors, cu.FirstError = cu.Errors+1, st.LastError
	}
	cu.Batches = counterValue(preg, "factos_projection_batches_total")
	cu.EventsPerS = float64(cu.Events) / cu.Seconds
	cu.PositionsPerS = float64(cu.Stored) / cu.Seconds
	return cu, nil
}

// counterValue sums a counter's series in reg.
func counterValue(reg *prometheus.Registry, name string) int64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return int64(v)
}

// projectionLag runs the live-lag scenario: one database under keys, the
// users projection running with the worker's default settings, and each
// rate of ProjectionRates offered for Duration; every command waits for
// its event in the view.
func (r *runner) projectionLag(ctx context.Context, res *Results) (err error) {
	t, err := r.keysTarget(ctx, 64)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	c, stop, err := startProjections(ctx, t, nil, usersProjection(t.codec))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()
	h := tickets.RegisterUserHandler(t.codec)
	for i, rate := range r.cfg.ProjectionRates {
		var mu sync.Mutex
		var dispatch, lag []time.Duration
		o, err := offer(ctx, rate, r.cfg.Duration, r.cfg.MinCommands, func(ctx context.Context, n int) error {
			id := fmt.Sprintf("l%d-%d", i, n)
			t0 := time.Now()
			out, err := eventstore.Dispatch(ctx, t.store, h, tickets.RegisterUser{UserID: id, Username: id}, nil)
			if err != nil {
				return err
			}
			t1 := time.Now()
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := c.WaitFor(wctx, "users", out.Records[0].Position); err != nil {
				return err
			}
			mu.Lock()
			dispatch, lag = append(dispatch, t1.Sub(t0)), append(lag, time.Since(t1))
			mu.Unlock()
			return nil
		})
		if err != nil {
			return fmt.Errorf("projection lag at %d/s: %w", rate, err)
		}
		pl := ProjectionLag{Rate: rate, PerSecond: o.perSecond(), Commands: int64(len(o.lat)), Seconds: o.seconds,
			PollMs:   float64(projections.DefaultPollInterval) / float64(time.Millisecond),
			Dispatch: latencyOf(dispatch), Lag: latencyOf(lag), Errors: o.errors, FirstError: o.firstErr}
		res.ProjectionLag = append(res.ProjectionLag, pl)
		fmt.Fprintf(r.cfg.Log, "projection lag rate=%-5d %7.0f cmd/s  dispatch p50 %.2fms p99 %.2fms  commit to view p50 %.1fms p99 %.1fms max %.1fms\n",
			rate, pl.PerSecond, pl.Dispatch.P50, pl.Dispatch.P99, pl.Lag.P50, pl.Lag.P99, pl.Lag.Max)
	}
	return nil
}
