package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
)

// matrix runs a scenario at every client count under every name (strategy
// or ceiling), each name in a database of its own. Per client count the
// names run back to back, and a repeated cell rotates their order, so that
// a slow stretch of the machine does not always hit the same strategy.
func (r *runner) matrix(ctx context.Context, res *Results, scenario string, names []string, mk func(*target) (workload, error)) (err error) {
	targets := make([]*target, 0, len(names))
	defer func() {
		for _, t := range targets {
			err = errors.Join(err, t.close())
		}
	}()
	for _, n := range names {
		url, drop, err := r.cfg.Databases.Create(ctx)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", scenario, n, err)
		}
		t, err := openTarget(ctx, r.cfg, n, url, drop, slices.Max(r.cfg.Clients))
		if err != nil {
			return fmt.Errorf("%s/%s: %w", scenario, n, err)
		}
		targets = append(targets, t)
	}
	workloads := make([]workload, len(targets))
	defer func() {
		for _, w := range workloads {
			if w.close != nil {
				w.close()
			}
		}
	}()
	for i, t := range targets {
		if workloads[i], err = mk(t); err != nil {
			return fmt.Errorf("%s/%s: %w", scenario, t.name, err)
		}
	}
	for _, clients := range r.cfg.Clients {
		cells := make([]Cell, len(targets))
		for i, t := range targets {
			cells[i] = Cell{Scenario: scenario, Strategy: t.name, Clients: clients}
		}
		for rep := range r.cfg.repeats(clients) {
			for k := range targets {
				i := (k + rep) % len(targets)
				ms, err := r.measure(ctx, targets[i], workloads[i], clients)
				if err != nil {
					return fmt.Errorf("%s/%s/%d clients: %w", scenario, targets[i].name, clients, err)
				}
				cells[i].Runs = append(cells[i].Runs, ms...)
				r.logCell(scenario, targets[i].name, clients, 0, rep, ms)
			}
		}
		for i := range cells {
			cells[i].summarize()
		}
		res.Cells = append(res.Cells, cells...)
	}
	return nil
}

// history measures the selective command (RegisterUser of a fresh name)
// with each history size already stored. Each size is loaded once into a
// template database, and every cell runs on a fresh clone of it, so no
// cell sees the events an earlier cell added.
func (r *runner) history(ctx context.Context, res *Results) error {
	for _, size := range r.cfg.HistorySizes {
		if err := r.historySize(ctx, res, size); err != nil {
			return fmt.Errorf("history %d: %w", size, err)
		}
	}
	return nil
}

func (r *runner) historySize(ctx context.Context, res *Results, size int) (err error) {
	fmt.Fprintf(r.cfg.Log, "history: loading %d events\n", size)
	tmpl, drop, err := r.template(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return loadHistory(ctx, pool, size, "h")
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop()) }()

	names := strategyNames(r.cfg.Strategies)
	for ci, clients := range r.cfg.Clients {
		cells := make([]Cell, len(names))
		for i, n := range names {
			cells[i] = Cell{Scenario: ScenarioHistory, Strategy: n, Clients: clients, History: size}
		}
		for rep := range r.cfg.repeats(clients) {
			for k := range names {
				i := (k + rep) % len(names)
				url, cdrop, err := r.cfg.Databases.Clone(ctx, tmpl)
				if err != nil {
					return err
				}
				t, err := openTarget(ctx, r.cfg, names[i], url, cdrop, clients)
				if err != nil {
					return err
				}
				// The plans of the first cell of each size: one client,
				// the default strategy.
				var c *capture
				if r.cfg.Explain && ci == 0 && rep == 0 && names[i] == string(eventstore.LockKeys) {
					c = newCapture()
					t.tracer.capture.Store(c)
				}
				ms, err := r.measure(ctx, t, workload{command: disjoint(t)}, clients)
				t.tracer.capture.Store(nil)
				if err == nil && c != nil {
					var plans []Plan
					plans, err = explain(ctx, t.url, c)
					for _, p := range plans {
						p.Scenario, p.Strategy, p.Events = ScenarioHistory, names[i], int64(size)
						res.Plans = append(res.Plans, p)
					}
				}
				if cerr := t.close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("%s/%d clients: %w", names[i], clients, err)
				}
				cells[i].Runs = append(cells[i].Runs, ms...)
				r.logCell(ScenarioHistory, names[i], clients, size, rep, ms)
			}
		}
		for i := range cells {
			cells[i].summarize()
		}
		res.Cells = append(res.Cells, cells...)
	}
	return nil
}

// template creates a database, migrates it, fills it with load and closes
// every connection to it, so that it can be cloned.
func (r *runner) template(ctx context.Context, load func(context.Context, *pgxpool.Pool) error) (string, func() error, error) {
	url, drop, err := r.cfg.Databases.Create(ctx)
	if err != nil {
		return "", nil, err
	}
	err = func() error {
		if err := migrate(ctx, url); err != nil {
			return err
		}
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return err
		}
		defer pool.Close()
		return load(ctx, pool)
	}()
	if err != nil {
		return "", nil, errors.Join(err, drop())
	}
	return url, drop, nil
}

// logCell logs the window a cell keeps (the last one measured).
func (r *runner) logCell(scenario, name string, clients, history, rep int, ms []Measurement) {
	m := ms[len(ms)-1]
	label := fmt.Sprintf("%s %-12s clients=%-3d", scenario, name, clients)
	if history > 0 {
		label += fmt.Sprintf(" history=%d", history)
	}
	if r.cfg.repeats(clients) > 1 {
		label += fmt.Sprintf(" rep=%d", rep+1)
	}
	fmt.Fprintf(r.cfg.Log, "%s  %8.0f cmd/s  p50 %6.2fms  p99 %7.2fms  retries/cmd %.3f  conflicts %d  rt/dispatch %.2f  cpu client %.2f server %.2f other %.2f",
		label, m.PerSecond, m.Latency.P50, m.Latency.P99, m.RetriesPerCommand, m.Conflicts, m.RoundTripsPer, m.CPU.Client, m.CPU.Server, m.CPU.Other)
	if m.Errors > 0 {
		fmt.Fprintf(r.cfg.Log, "  errors %d (%s)", m.Errors, m.FirstError)
	}
	fmt.Fprintln(r.cfg.Log)
}

func strategyNames(ss []eventstore.LockStrategy) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
