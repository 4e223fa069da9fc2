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

// States of an ordered effect (factos_effect_sequences.state).
const (
	// EffectWaiting: planned; its job is pending until the sequencer
	// releases it.
	EffectWaiting = "waiting"
	// EffectRunning: released; its job is available, running or retrying.
	EffectRunning = "running"
	// EffectDone: its job completed.
	EffectDone = "done"
	// EffectFailed: its job was cancelled, discarded or deleted, and its
	// key halts here (HaltSequence).
	EffectFailed = "failed"
	// EffectSkipped: failed with ContinueSequence, or skipped by an
	// operator; its key went on.
	EffectSkipped = "skipped"
)

// ErrEffectNotFound: no effect has the effect key (or the job id).
var ErrEffectNotFound = errors.New("reactors: no effect with that key")

// EffectStateError reports an operation refused in the effect's state.
type EffectStateError struct {
	// Key is the effect key; State its state; Op what was refused.
	Key, State, Op string
}

func (e *EffectStateError) Error() string {
	return fmt.Sprintf("reactors: cannot %s effect %s: it is %s", e.Op, e.Key, e.State)
}

// SequencedEffect is an effect with an ordering key, as
// factos_effect_sequences and River hold it.
type SequencedEffect struct {
	EffectKey   string
	OrderingKey string
	Kind        string
	Reactor     string
	// Position and Ordinal (the index in the reactor's plan for the
	// record) order the key's effects.
	Position eventstore.Position
	Ordinal  int
	JobID    int64
	// State is one of EffectWaiting, EffectRunning, EffectDone,
	// EffectFailed and EffectSkipped.
	State string
	// JobState is River's state of the job; empty once River's cleaner
	// (or an operator) deleted it.
	JobState string
	// Attempt of the job, and its last error, if any.
	Attempt    int
	LastError  string
	PlannedAt  time.Time
	ReleasedAt *time.Time
	FinishedAt *time.Time
}

// EffectFilter selects ordered effects. Zero fields select all.
type EffectFilter struct {
	JobID       int64
	EffectKey   string
	Kind        string
	OrderingKey string
	State       string
	// Limit bounds the result. Default: 100.
	Limit int
}

const listEffectsSQL = `SELECT s.effect_key, s.ordering_key, s.kind, s.reactor, s.position, s.ordinal, s.job_id, s.state,
	coalesce(j.state::text, ''), coalesce(j.attempt, 0), coalesce(j.errors[array_length(j.errors, 1)]->>'error', ''),
	s.planned_at, s.released_at, s.finished_at
FROM factos_effect_sequences s LEFT JOIN river_job j ON j.id = s.job_id
WHERE ($1::int8 = 0 OR s.job_id = $1::int8) AND ($2 = '' OR s.effect_key = $2) AND ($3 = '' OR s.kind = $3)
	AND ($4 = '' OR s.ordering_key = $4) AND ($5 = '' OR s.state = $5)
ORDER BY s.ordering_key, s.position, s.reactor, s.ordinal
LIMIT $6`

// ListEffects returns the ordered effects f selects, in each key's order.
func ListEffects(ctx context.Context, pool *pgxpool.Pool, f EffectFilter) ([]SequencedEffect, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := pool.Query(ctx, listEffectsSQL, f.JobID, f.EffectKey, f.Kind, f.OrderingKey, f.State, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("error listing ordered effects: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (SequencedEffect, error) {
		var e SequencedEffect
		err := row.Scan(&e.EffectKey, &e.OrderingKey, &e.Kind, &e.Reactor, &e.Position, &e.Ordinal, &e.JobID, &e.State,
			&e.JobState, &e.Attempt, &e.LastError, &e.PlannedAt, &e.ReleasedAt, &e.FinishedAt)
		return e, err
	})
}

// KeyStatus is the state of one ordering key with unfinished effects.
type KeyStatus struct {
	OrderingKey string
	// Halted is true when the key's head failed (HaltSequence): nothing
	// of the key runs until an operator retries or skips it.
	Halted bool
	// Head is the key's first unfinished effect.
	Head SequencedEffect
	// Unfinished counts the key's effects waiting, running or failed,
	// the head included.
	Unfinished int
}

// SequencesFilter selects keys for Sequences.
type SequencesFilter struct {
	// HaltedOnly selects halted keys only.
	HaltedOnly bool
	// Limit bounds the result. Default: 100.
	Limit int
}

const sequencesSQL = `WITH heads AS (
	SELECT DISTINCT ON (ordering_key) effect_key, ordering_key
	FROM factos_effect_sequences WHERE state IN ('waiting', 'running', 'failed')
	ORDER BY ordering_key, position, reactor, ordinal
)
SELECT h.ordering_key, h.effect_key,
	(SELECT count(*) FROM factos_effect_sequences u WHERE u.ordering_key = h.ordering_key AND u.state IN ('waiting', 'running', 'failed'))
FROM heads h JOIN factos_effect_sequences s ON s.effect_key = h.effect_key
WHERE NOT $1 OR s.state = 'failed'
ORDER BY h.ordering_key
LIMIT $2`

// Sequences returns the keys that have unfinished effects, each with its
// head, halted keys included (or only those).
func Sequences(ctx context.Context, pool *pgxpool.Pool, f SequencesFilter) ([]KeyStatus, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := pool.Query(ctx, sequencesSQL, f.HaltedOnly, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("error listing sequences: %w", err)
	}
	type head struct {
		key, effect string
		n           int
	}
	heads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (head, error) {
		var h head
		return h, row.Scan(&h.key, &h.effect, &h.n)
	})
	if err != nil {
		return nil, fmt.Errorf("error listing sequences: %w", err)
	}
	out := make([]KeyStatus, 0, len(heads))
	for _, h := range heads {
		es, err := ListEffects(ctx, pool, EffectFilter{EffectKey: h.effect, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			continue // finished meanwhile
		}
		out = append(out, KeyStatus{OrderingKey: h.key, Halted: es[0].State == EffectFailed, Head: es[0], Unfinished: h.n})
	}
	return out, nil
}

// SkipEffect skips an ordered effect that failed (its key halted there)
// or waits: it is marked skipped, a waiting one's pending job is
// cancelled so that it never runs, and its key goes on. A running, done
// or skipped effect is refused with an *EffectStateError. An unordered
// effect's job that has not run yet is cancelled (see skipUnordered).
func (r *Registry) SkipEffect(ctx context.Context, pool *pgxpool.Pool, effectKey string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var state string
		var jobID int64
		err := tx.QueryRow(ctx, `SELECT state, job_id FROM factos_effect_sequences WHERE effect_key = $1 FOR UPDATE`, effectKey).Scan(&state, &jobID)
		if errors.Is(err, pgx.ErrNoRows) {
			return skipUnordered(ctx, tx, effectKey)
		}
		if err != nil {
			return err
		}
		if state != EffectFailed && state != EffectWaiting {
			return &EffectStateError{Key: effectKey, State: state, Op: "skip"}
		}
		if state == EffectWaiting {
			if _, err := tx.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1 AND state = 'pending'`, jobID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE factos_effect_sequences SET state = 'skipped', finished_at = clock_timestamp() WHERE effect_key = $1`, effectKey)
		return err
	})
	if err != nil {
		return adminError("skipping", effectKey, err)
	}
	r.seq.Wake()
	return nil
}

// RetryEffect runs an ordered effect that failed, or was skipped, again:
// its job (cancelled or discarded) goes back to pending with its kind's
// MaxAttempts more attempts, and the sequencer releases it as its key's
// head. A job River's cleaner deleted is planned again: the reactor that
// planned the effect reacts to its record again (reactors are pure) and
// the effect with the same key gets a new job. The effect-key ledger
// therefore never blocks a deliberate re-run. An effect waiting, running
// or done is refused with an *EffectStateError. store loads the record.
// An unordered effect is retried the same way, without a sequence (see
// retryUnordered); ErrEffectNotFound means no effect has the key.
func (r *Registry) RetryEffect(ctx context.Context, store *eventstore.Store, effectKey string) error {
	err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		var e SequencedEffect
		var jobState string
		err := tx.QueryRow(ctx, `SELECT s.state, s.job_id, s.kind, s.reactor, s.position, coalesce(j.state::text, '')
			FROM factos_effect_sequences s LEFT JOIN river_job j ON j.id = s.job_id
			WHERE s.effect_key = $1 FOR UPDATE OF s`, effectKey).Scan(&e.State, &e.JobID, &e.Kind, &e.Reactor, &e.Position, &jobState)
		if errors.Is(err, pgx.ErrNoRows) {
			return r.retryUnordered(ctx, tx, store, effectKey)
		}
		if err != nil {
			return err
		}
		if e.State != EffectFailed && e.State != EffectSkipped {
			return &EffectStateError{Key: effectKey, State: e.State, Op: "retry"}
		}
		h, ok := r.effects[e.Kind]
		if !ok {
			return fmt.Errorf("effect kind %q is not registered in this process", e.Kind)
		}
		jobID := e.JobID
		switch jobState {
		case "cancelled", "discarded":
			_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'pending', finalized_at = NULL, scheduled_at = now(),
				max_attempts = attempt + $2 WHERE id = $1`, jobID, h.maxAttempts)
		case "":
			jobID, err = r.replan(ctx, tx, store, e, effectKey, true)
		default:
			// Retried already (from River UI): the sequencer follows it.
			return &EffectStateError{Key: effectKey, State: e.State + " (job " + jobState + ")", Op: "retry"}
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE factos_effect_sequences SET state = 'waiting', job_id = $2, released_at = NULL, finished_at = NULL
			WHERE effect_key = $1`, effectKey, jobID)
		return err
	})
	if err != nil {
		return adminError("retrying", effectKey, err)
	}
	r.seq.Wake()
	return nil
}

// replan inserts a new job for an effect whose job is gone (pending for
// an ordered effect, available for an unordered one), from what its
// reactor plans for its record. ordered says whether the effect was
// planned with an ordering key.
func (r *Registry) replan(ctx context.Context, tx pgx.Tx, store *eventstore.Store, e SequencedEffect, effectKey string, ordered bool) (int64, error) {
	entry, ok := r.reactors[e.Reactor]
	if !ok {
		return 0, fmt.Errorf("reactor %q is not registered in this process", e.Reactor)
	}
	recs, err := store.ReadPositions(ctx, e.Position)
	if err != nil {
		return 0, err
	}
	if len(recs) != 1 {
		return 0, fmt.Errorf("record %d not found", e.Position)
	}
	effects, err := entry.react(recs[0])
	if err != nil {
		return 0, fmt.Errorf("reactor %s failed on record %d: %w", e.Reactor, e.Position, err)
	}
	for _, planned := range effects {
		if planned.Key != effectKey {
			continue
		}
		// An effect planned ordered needs its sequence row, which only
		// a reaction writes; one planned unordered must not get one.
		if _, ok := r.effects[planned.Kind]; !ok || (planned.OrderingKey != "") != ordered {
			return 0, fmt.Errorf("reactor %s now plans effect %s with another ordering or of an unregistered kind", e.Reactor, effectKey)
		}
		rc := reaction{job: &reactionJob{ctx: ctx}, reactor: e.Reactor, rec: recs[0], effects: []eventstore.PlannedEffect{planned}}
		if err := rc.encode(); err != nil {
			return 0, err
		}
		params := r.reactParams([]reaction{rc})
		// The job columns of reactParams ($9..$17), one row.
		var id int64
		err = tx.QueryRow(ctx, replanSQL, params[9:17]...).Scan(&id)
		return id, err
	}
	return 0, fmt.Errorf("reactor %s no longer plans effect %s for record %d", e.Reactor, effectKey, e.Position)
}

const replanSQL = `INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, tags, metadata)
SELECT a, kd, m, p, q, s::river_job_state, string_to_array(t, ',')::varchar(255)[], coalesce(md, '{}')
FROM unnest($1::jsonb[], $2::text[], $3::int2[], $4::int2[], $5::text[], $6::text[], $7::text[], $8::jsonb[]) AS x(a, kd, m, p, q, s, t, md)
RETURNING id`

func adminError(op, key string, err error) error {
	var se *EffectStateError
	if errors.Is(err, ErrEffectNotFound) || errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("reactors: error %s effect %s: %w", op, key, err)
}
