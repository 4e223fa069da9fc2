package reactors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
)

// EffectArgs are the River job args of one effect. The kind of the job is
// EffectKindPrefix + EffectKind, so River UI lists each effect kind apart.
type EffectArgs struct {
	EffectKind string          `json:"effect_kind"`
	Key        string          `json:"key"`
	Reactor    string          `json:"reactor"`
	Position   int64           `json:"position"`
	EventID    string          `json:"event_id"`
	Args       json.RawMessage `json:"args,omitempty"`
}

// Kind implements river.JobArgs.
func (a EffectArgs) Kind() string { return EffectKindPrefix + a.EffectKind }

// reactionWorker runs one reactor on one committed record and enqueues the
// effects it plans.
//
// Everything the reaction writes happens in ONE transaction: the ledger row
// that says the reaction ran, the ledger rows of the effect keys, the effect
// jobs, and the completion of the reaction job itself (JobCompleteTx). A
// crash before the commit leaves nothing and River retries the job; a crash
// after it leaves everything, and the job is already complete. A retried or
// replayed reaction finds its ledger row and enqueues nothing; an effect key
// that another reaction already enqueued is not enqueued again.
type reactionWorker struct {
	river.WorkerDefaults[outbox.ReactionArgs]
	reg   *Registry
	store *eventstore.Store
	entry *reactorEntry
}

const (
	insertReactionSQL = `INSERT INTO factos_reactions (reactor, position, event_id, effects) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`
	insertEffectsSQL  = `INSERT INTO factos_effects (key, kind, reactor, position)
SELECT k, kind, $3, $4 FROM unnest($1::text[], $2::text[]) AS t(k, kind)
ON CONFLICT DO NOTHING RETURNING key`
)

func (w *reactionWorker) Work(ctx context.Context, job *river.Job[outbox.ReactionArgs]) error {
	reg, args := w.reg, job.Args
	started := time.Now()
	records, err := w.store.ReadPositions(ctx, eventstore.Position(args.Position))
	if err != nil {
		return fmt.Errorf("error loading record %d: %w", args.Position, err)
	}
	if len(records) == 0 || records[0].ID.String() != args.EventID {
		// The log is append-only: a missing or different record means the
		// job was built for another database. Retrying cannot help.
		return river.JobCancel(fmt.Errorf("record %d with event id %s not found", args.Position, args.EventID))
	}
	rec := records[0]
	if job.Attempt == 1 {
		reg.cfg.Metrics.observeLag(args.Reactor, started.Sub(rec.RecordedAt))
	}
	if err := reg.step("loaded", args.Position); err != nil {
		return err
	}

	effects, err := w.entry.react(rec)
	if err != nil {
		reg.cfg.Metrics.reaction(args.Reactor, "error")
		return fmt.Errorf("reactor %s failed on record %d: %w", args.Reactor, args.Position, err)
	}
	params, keys, kinds, err := reg.effectJobs(args, rec, effects)
	if err != nil {
		reg.cfg.Metrics.reaction(args.Reactor, "error")
		return err
	}
	if err := reg.step("reacted", args.Position); err != nil {
		return err
	}

	tx, err := w.store.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	tag, err := tx.Exec(ctx, insertReactionSQL, args.Reactor, args.Position, rec.ID, len(params))
	if err != nil {
		return fmt.Errorf("error recording reaction: %w", err)
	}
	outcome := "reacted"
	if tag.RowsAffected() == 0 {
		// This reaction already ran (a replay, or a duplicate job): its
		// effects are enqueued already.
		outcome = "duplicate"
	} else if len(params) > 0 {
		if err := reg.step("ledger", args.Position); err != nil {
			return err
		}
		fresh, err := insertEffectKeys(ctx, tx, keys, kinds, args)
		if err != nil {
			return err
		}
		if err := reg.step("effect keys", args.Position); err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		for i, p := range params {
			if fresh[keys[i]] {
				jobs = append(jobs, p)
				delete(fresh, keys[i]) // a key planned twice runs once
			}
		}
		if len(jobs) > 0 {
			client := river.ClientFromContext[pgx.Tx](ctx)
			if _, err := client.InsertManyTx(ctx, tx, jobs); err != nil {
				return fmt.Errorf("error enqueuing %d effects: %w", len(jobs), err)
			}
		}
		if err := reg.step("effect jobs", args.Position); err != nil {
			return err
		}
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("error completing reaction job: %w", err)
	}
	if err := reg.step("completed", args.Position); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing reaction: %w", err)
	}
	reg.cfg.Metrics.reaction(args.Reactor, outcome)
	// A failure from here on (the process dying before River records the
	// result) changes nothing: the completion is committed and wins.
	return reg.step("committed", args.Position)
}

func insertEffectKeys(ctx context.Context, tx pgx.Tx, keys, kinds []string, args outbox.ReactionArgs) (map[string]bool, error) {
	rows, err := tx.Query(ctx, insertEffectsSQL, keys, kinds, args.Reactor, args.Position)
	if err != nil {
		return nil, fmt.Errorf("error recording effect keys: %w", err)
	}
	fresh := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, err
		}
		fresh[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error recording effect keys: %w", err)
	}
	return fresh, nil
}

// effectJobs validates the planned effects and builds their jobs.
func (r *Registry) effectJobs(args outbox.ReactionArgs, rec eventstore.RawRecord, effects []eventstore.Effect) (params []river.InsertManyParams, keys, kinds []string, err error) {
	for i, e := range effects {
		h, ok := r.effects[e.Kind]
		if !ok {
			return nil, nil, nil, fmt.Errorf("reactor %s planned effect %d of unregistered kind %q", args.Reactor, i, e.Kind)
		}
		if e.Key == "" {
			return nil, nil, nil, fmt.Errorf("reactor %s planned effect %d (%s) without a key", args.Reactor, i, e.Kind)
		}
		raw, err := json.Marshal(e.Args)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("error encoding args of effect %s: %w", e.Key, err)
		}
		params = append(params, river.InsertManyParams{
			Args:       EffectArgs{EffectKind: e.Kind, Key: e.Key, Reactor: args.Reactor, Position: int64(rec.Position), EventID: rec.ID.String(), Args: raw},
			InsertOpts: &river.InsertOpts{Queue: h.queue, MaxAttempts: h.maxAttempts},
		})
		keys = append(keys, e.Key)
		kinds = append(kinds, e.Kind)
	}
	return params, keys, kinds, nil
}

func (r *Registry) step(name string, position int64) error {
	if r.fault == nil {
		return nil
	}
	return r.fault(name, position)
}

// effectWorker runs one effect with its handler.
type effectWorker struct {
	river.WorkerDefaults[EffectArgs]
	reg   *Registry
	entry *effectEntry
}

func (w *effectWorker) Timeout(*river.Job[EffectArgs]) time.Duration { return w.entry.timeout }

func (w *effectWorker) Work(ctx context.Context, job *river.Job[EffectArgs]) error {
	m := w.reg.cfg.Metrics
	if job.Attempt > 1 {
		m.effectRetry(w.entry.kind)
	}
	start := time.Now()
	err := w.entry.handle(ctx, &job.Args, job.Attempt)
	switch {
	case err == nil:
		m.effectDone(w.entry.kind, "completed", time.Since(start))
		return nil
	case errors.Is(err, ErrPermanent):
		m.effectDone(w.entry.kind, "cancelled", time.Since(start))
		m.effectDiscard(w.entry.kind, "permanent")
		return river.JobCancel(err)
	case job.Attempt >= job.MaxAttempts:
		m.effectDone(w.entry.kind, "failed", time.Since(start))
		m.effectDiscard(w.entry.kind, "exhausted")
		return err
	}
	m.effectDone(w.entry.kind, "failed", time.Since(start))
	return err
}
