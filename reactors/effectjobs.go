package reactors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
)

// EffectJob is an effect as an operator sees it: its River job, and for
// an ordered effect its place in its key's sequence. It covers unordered
// and ordered effects alike.
type EffectJob struct {
	// JobID is the River job; 0 when River's cleaner (or an operator)
	// deleted it (listed only for ordered effects, whose sequence row
	// stays).
	JobID     int64  `json:"job_id"`
	Kind      string `json:"kind"`
	EffectKey string `json:"effect_key"`
	// OrderingKey is empty for an unordered effect.
	OrderingKey string              `json:"ordering_key,omitempty"`
	Reactor     string              `json:"reactor"`
	Position    eventstore.Position `json:"position"`
	EventType   string              `json:"event_type,omitempty"`
	// JobState is River's state of the job (empty once deleted).
	JobState string `json:"job_state"`
	// Sequence is the ordered effect's state (EffectWaiting ...
	// EffectSkipped); empty for an unordered effect.
	Sequence    string    `json:"sequence,omitempty"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// EffectJobFilter selects effects for EffectJobs. Zero fields select
// all; State matches River's job state or an ordered effect's sequence
// state.
type EffectJobFilter struct {
	JobID       int64
	EffectKey   string
	Kind        string
	OrderingKey string
	State       string
	// Limit bounds the result. Default: 100.
	Limit int
}

// effectJobsSQL reads effect jobs newest first, and the ordered effects
// whose job is gone. The args containment tests (@>) use River's GIN
// index on args.
const effectJobsSQL = `WITH jobs AS (
	SELECT j.id, j.args->>'effect_kind' AS kind, j.args->>'key' AS key, coalesce(j.args->>'ordering_key', '') AS ordering_key,
		j.args->>'reactor' AS reactor, (j.args->>'position')::bigint AS position, coalesce(j.args->>'event_type', '') AS event_type,
		j.state::text AS job_state, coalesce(s.state, '') AS sequence, j.attempt, j.max_attempts,
		coalesce(j.errors[array_length(j.errors, 1)]->>'error', '') AS last_error, j.created_at
	FROM river_job j LEFT JOIN factos_effect_sequences s ON s.job_id = j.id
	WHERE j.kind LIKE 'factos.effect.%'
		AND ($1::int8 = 0 OR j.id = $1::int8)
		AND ($2 = '' OR j.args @> jsonb_build_object('key', $2::text))
		AND ($3 = '' OR j.kind = 'factos.effect.' || $3)
		AND ($4 = '' OR j.args @> jsonb_build_object('ordering_key', $4::text))
		AND ($5 = '' OR j.state::text = $5 OR s.state = $5)
	UNION ALL
	SELECT 0, s.kind, s.effect_key, s.ordering_key, s.reactor, s.position, '', '', s.state, 0, 0, '', s.planned_at
	FROM factos_effect_sequences s
	WHERE NOT EXISTS (SELECT FROM river_job j WHERE j.id = s.job_id)
		AND $1::int8 = 0 AND ($2 = '' OR s.effect_key = $2) AND ($3 = '' OR s.kind = $3)
		AND ($4 = '' OR s.ordering_key = $4) AND ($5 = '' OR s.state = $5)
)
SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT $6`

// EffectJobs lists effects, ordered and unordered, newest first.
func EffectJobs(ctx context.Context, pool *pgxpool.Pool, f EffectJobFilter) ([]EffectJob, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := pool.Query(ctx, effectJobsSQL, f.JobID, f.EffectKey, f.Kind, f.OrderingKey, f.State, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("error listing effects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (EffectJob, error) {
		var e EffectJob
		err := row.Scan(&e.JobID, &e.Kind, &e.EffectKey, &e.OrderingKey, &e.Reactor, &e.Position, &e.EventType,
			&e.JobState, &e.Sequence, &e.Attempt, &e.MaxAttempts, &e.LastError, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("error listing effects: %w", err)
	}
	return out, nil
}

// EffectKeyOfJob returns the effect key of an effect's River job.
func EffectKeyOfJob(ctx context.Context, pool *pgxpool.Pool, jobID int64) (string, error) {
	var key string
	err := pool.QueryRow(ctx, `SELECT args->>'key' FROM river_job WHERE id = $1 AND kind LIKE 'factos.effect.%'`, jobID).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrEffectNotFound
	}
	if err != nil {
		return "", fmt.Errorf("error reading job %d: %w", jobID, err)
	}
	return key, nil
}

// EffectKindCount is how many jobs of an effect kind are in a River state.
type EffectKindCount struct {
	Kind  string `json:"kind"`
	State string `json:"state"`
	Jobs  int64  `json:"jobs"`
}

// EffectCounts counts effect jobs by kind and River state.
func EffectCounts(ctx context.Context, pool *pgxpool.Pool) ([]EffectKindCount, error) {
	rows, err := pool.Query(ctx, `SELECT substr(kind, length('factos.effect.') + 1), state::text, count(*)
		FROM river_job WHERE kind LIKE 'factos.effect.%' GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("error counting effects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (EffectKindCount, error) {
		var c EffectKindCount
		return c, row.Scan(&c.Kind, &c.State, &c.Jobs)
	})
	if err != nil {
		return nil, fmt.Errorf("error counting effects: %w", err)
	}
	return out, nil
}

// retryUnordered runs an unordered effect again: a discarded or
// cancelled job becomes available with its kind's MaxAttempts more
// attempts; a job that is gone (River's cleaner deleted it) is planned
// again from the effect-key ledger, so the ledger never blocks a
// deliberate re-run. A job that is still to run or completed is refused.
func (r *Registry) retryUnordered(ctx context.Context, tx pgx.Tx, store *eventstore.Store, effectKey string) error {
	e, jobID, jobState, err := unorderedJob(ctx, tx, effectKey)
	if err != nil {
		return err
	}
	h, ok := r.effects[e.Kind]
	if !ok {
		return fmt.Errorf("effect kind %q is not registered in this process", e.Kind)
	}
	switch jobState {
	case "":
		_, err = r.replan(ctx, tx, store, e, effectKey, false)
		return err
	case "discarded", "cancelled":
		_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'available', finalized_at = NULL, scheduled_at = now(),
			max_attempts = attempt + $2 WHERE id = $1`, jobID, h.maxAttempts)
		return err
	default:
		return &EffectStateError{Key: effectKey, State: "job " + jobState, Op: "retry"}
	}
}

// skipUnordered cancels an unordered effect's job that has not run yet
// (available, scheduled or retryable): it will not run. A running job is
// refused (River UI's cancel reaches a running job through its worker).
func skipUnordered(ctx context.Context, tx pgx.Tx, effectKey string) error {
	_, jobID, jobState, err := unorderedJob(ctx, tx, effectKey)
	if err != nil {
		return err
	}
	switch jobState {
	case "":
		return &EffectStateError{Key: effectKey, State: "gone (its job was deleted)", Op: "skip"}
	case "available", "scheduled", "retryable", "pending":
		_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, jobID)
		return err
	default:
		return &EffectStateError{Key: effectKey, State: "job " + jobState, Op: "skip"}
	}
}

// unorderedJob reads an unordered effect from the effect-key ledger and
// locks its newest River job; jobState is "" when River's cleaner (or an
// operator) deleted the job. ErrEffectNotFound: no effect has the key.
func unorderedJob(ctx context.Context, tx pgx.Tx, effectKey string) (e SequencedEffect, jobID int64, jobState string, err error) {
	err = tx.QueryRow(ctx, `SELECT kind, reactor, position FROM factos_effects WHERE key = $1`, effectKey).Scan(&e.Kind, &e.Reactor, &e.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, 0, "", ErrEffectNotFound
	}
	if err != nil {
		return e, 0, "", err
	}
	err = tx.QueryRow(ctx, `SELECT id, state::text FROM river_job WHERE kind = $1 AND args @> jsonb_build_object('key', $2::text)
		ORDER BY id DESC LIMIT 1 FOR UPDATE`, EffectKindPrefix+e.Kind, effectKey).Scan(&jobID, &jobState)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, 0, "", nil
	}
	return e, jobID, jobState, err
}
