package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run runs the configured scenarios and returns their results. On an error
// it returns what it measured so far with the error.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bench: invalid config: %w", err)
	}
	res := &Results{Run: RunInfo{
		ID:             time.Now().UTC().Format("20060102T150405Z"),
		Started:        time.Now().UTC(),
		Command:        cfg.Command,
		Scenarios:      cfg.Scenarios,
		Strategies:     strategyNames(cfg.Strategies),
		Clients:        cfg.Clients,
		DurationSec:    cfg.Duration.Seconds(),
		WarmupSec:      cfg.Warmup.Seconds(),
		Repeats:        cfg.Repeats,
		HighClients:    cfg.HighClients,
		HighRepeats:    cfg.HighRepeats,
		HotEpoch:       cfg.HotEpoch,
		MixHotPercent:  cfg.MixHotPercent,
		MaxAttempts:    cfg.MaxAttempts,
		MaxOther:       cfg.MaxOther,
		Remeasure:      cfg.Remeasure,
		Definitions:    definitions,
		CatchUpEvents:  cfg.CatchUpEvents,
		CatchUpWriters: cfg.CatchUpWriters,
		TailRates:      cfg.TailRates,
		MinCommands:    cfg.MinCommands,
		HistorySizes:   cfg.HistorySizes,
		EffectRates:    cfg.EffectRates,
		EffectSteps:    cfg.EffectSteps,

		EffectOrderingKeys: cfg.EffectOrderingKeys,

		ProjectionBatchSizes: cfg.ProjectionBatchSizes,
		ProjectionRates:      cfg.ProjectionRates,
	}}
	if !cfg.has(ScenarioCatchUp) {
		res.Run.CatchUpEvents, res.Run.CatchUpWriters = 0, 0
	}
	if !cfg.has(ScenarioTail) {
		res.Run.TailRates = nil
	}
	if !cfg.has(ScenarioHistory) {
		res.Run.HistorySizes = nil
	}
	if !cfg.has(ScenarioEffects) {
		res.Run.EffectRates, res.Run.EffectSteps, res.Run.EffectOrderingKeys = nil, nil, 0
	}
	if !cfg.has(ScenarioProjectionCatchUp) {
		res.Run.ProjectionBatchSizes = nil
	} else {
		res.Run.CatchUpEvents = cfg.CatchUpEvents
	}
	if !cfg.has(ScenarioProjectionLag) {
		res.Run.ProjectionRates = nil
	}
	r := &runner{cfg: &cfg, cpu: &cpuMeter{postmaster: cfg.ServerPID}}
	if err := r.probe(ctx, res); err != nil {
		return nil, err
	}
	err := r.scenarios(ctx, res)
	res.Run.Finished = time.Now().UTC()
	res.evaluate()
	return res, err
}

// probe describes the machine and the server from a database of its own,
// and finds the server's processes when they run here.
func (r *runner) probe(ctx context.Context, res *Results) (err error) {
	url, drop, err := r.cfg.Databases.Create(ctx)
	if err != nil {
		return fmt.Errorf("error creating a database: %w", err)
	}
	defer func() { err = errors.Join(err, drop()) }()
	if res.Machine, err = describeMachine(ctx, url); err != nil {
		return fmt.Errorf("error describing the server: %w", err)
	}
	if r.cpu.postmaster == 0 {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var backend int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
			return err
		}
		r.cpu.postmaster = postmasterOf(backend)
	}
	return nil
}

func (r *runner) scenarios(ctx context.Context, res *Results) error {
	cfg := r.cfg
	names := strategyNames(cfg.Strategies)
	if cfg.has(ScenarioDisjoint) || cfg.has(ScenarioCeiling) {
		var all []string
		if cfg.has(ScenarioDisjoint) {
			all = append(all, names...)
		}
		if cfg.has(ScenarioCeiling) {
			all = append(all, strategyCeiling, strategyCeilingTx)
		}
		err := r.matrix(ctx, res, ScenarioDisjoint, all, func(t *target) (workload, error) {
			switch t.name {
			case strategyCeiling:
				return workload{command: ceiling(t, false)}, nil
			case strategyCeilingTx:
				return workload{command: ceiling(t, true)}, nil
			}
			return workload{command: disjoint(t)}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioHot) {
		err := r.matrix(ctx, res, ScenarioHot, names, func(t *target) (workload, error) {
			h := newHot(t, cfg)
			return workload{prepare: h.prepare, command: h.buy}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioMix) {
		err := r.matrix(ctx, res, ScenarioMix, names, func(t *target) (workload, error) {
			h := newHot(t, cfg)
			return workload{prepare: h.prepare, command: mix(t, h, cfg.MixHotPercent)}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioStream) {
		err := r.matrix(ctx, res, ScenarioStream, names, func(t *target) (workload, error) {
			return workload{command: stream(t)}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioHistory) {
		if err := r.history(ctx, res); err != nil {
			return err
		}
	}
	if cfg.has(ScenarioCatchUp) {
		if err := r.catchUp(ctx, res); err != nil {
			return err
		}
	}
	if cfg.has(ScenarioTail) {
		if err := r.tail(ctx, res); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
	}
	if cfg.has(ScenarioOutbox) {
		err := r.matrix(ctx, res, ScenarioOutbox, []string{keys, strategyOutbox}, func(t *target) (workload, error) {
			return workload{command: disjoint(t)}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioTracing) {
		err := r.matrix(ctx, res, ScenarioTracing, []string{strategyOutbox, strategyTracing}, func(t *target) (workload, error) {
			return workload{command: disjoint(t)}, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioEffects) {
		if err := r.effects(ctx, res); err != nil {
			return err
		}
	}
	if cfg.has(ScenarioProjections) {
		err := r.matrix(ctx, res, ScenarioProjections, []string{keys, strategyProjections}, func(t *target) (workload, error) {
			return projectionsWorkload(ctx, t)
		})
		if err != nil {
			return err
		}
	}
	if cfg.has(ScenarioProjectionCatchUp) {
		if err := r.projectionCatchUp(ctx, res); err != nil {
			return fmt.Errorf("projection catch-up: %w", err)
		}
	}
	if cfg.has(ScenarioProjectionLag) {
		if err := r.projectionLag(ctx, res); err != nil {
			return fmt.Errorf("projection lag: %w", err)
		}
	}
	if cfg.has(ScenarioTemporal) {
		tc, closeTemporal, err := dialTemporal(ctx, cfg)
		if err != nil {
			return err
		}
		defer closeTemporal()
		err = r.matrix(ctx, res, ScenarioTemporal, []string{strategyDirect, strategyTemporal, strategyTemporalLocal, strategyTemporalEager}, func(t *target) (workload, error) {
			p, err := newCommandPath(t, tc)
			if err != nil {
				return workload{}, err
			}
			w := workload{prepare: p.prepare, command: p.command, close: p.close}
			if p.worker != nil {
				w.minDuration, w.othersWork = temporalWindow, true
			}
			return w, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
