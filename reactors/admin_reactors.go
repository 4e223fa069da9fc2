package reactors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
)

// This file holds what an operator does with reactors while workers run:
// read where each reactor stands (ReactorStatuses) and forget what a
// reactor did so that a replay runs it again (ResetReactor). `worker
// reactors` is their command line.

// ErrUnknownReactor: no reactor of that name is registered.
var ErrUnknownReactor = errors.New("unknown reactor")

// StatusScanLimit bounds how many unreacted records ReactorStatuses counts
// per reactor; beyond it ReactorStatus.UnreactedCapped is set.
const StatusScanLimit = 1000

// ReactorStatus is where a reactor stands.
type ReactorStatus struct {
	Name  string `json:"name"`
	Queue string `json:"queue"`
	// Reacted is the number of records in the reactor's reaction ledger.
	Reacted int64 `json:"reacted"`
	// Position is the highest position in its ledger (0: none), and
	// LastReactedAt when that reaction committed.
	Position      eventstore.Position `json:"position"`
	LastReactedAt *time.Time          `json:"last_reacted_at,omitempty"`
	// Head is the log's high-water mark.
	Head eventstore.Position `json:"head"`
	// Unreacted counts the records the reactor subscribes to above
	// Position: its lag. Records below Position whose reaction failed are
	// in DiscardedJobs or PendingJobs instead. At most StatusScanLimit are
	// counted; UnreactedCapped says there are more.
	Unreacted       int  `json:"unreacted"`
	UnreactedCapped bool `json:"unreacted_capped,omitempty"`
	// PendingJobs are reaction jobs for the reactor still to run (available,
	// scheduled, retryable, pending or running), replays included.
	PendingJobs int64 `json:"pending_jobs"`
	// DiscardedJobs are reaction jobs for it that River discarded or
	// cancelled (until River's cleaner deletes them).
	DiscardedJobs int64 `json:"discarded_jobs"`
}

// reactorLedgerSQL reads a reactor's ledger summary and its reaction jobs.
const reactorLedgerSQL = `SELECT
	(SELECT count(*) FROM factos_reactions WHERE reactor = $1),
	(SELECT coalesce(max(position), 0) FROM factos_reactions WHERE reactor = $1),
	(SELECT max(reacted_at) FROM factos_reactions WHERE reactor = $1 AND position = (SELECT max(position) FROM factos_reactions WHERE reactor = $1)),
	(SELECT count(*) FROM river_job WHERE kind = '` + outbox.Kind + `' AND args->'reactors' ? $1
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')),
	(SELECT count(*) FROM river_job WHERE kind = '` + outbox.Kind + `' AND args->'reactors' ? $1
		AND state IN ('discarded', 'cancelled')),
	(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM factos_events_position_seq)`

// ReactorStatuses reports every registered reactor's ledger position, lag
// and reaction jobs, sorted by name. It only reads.
func (r *Registry) ReactorStatuses(ctx context.Context, store *eventstore.Store) ([]ReactorStatus, error) {
	names := make([]string, 0, len(r.reactors))
	for n := range r.reactors {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]ReactorStatus, 0, len(names))
	for _, name := range names {
		entry := r.reactors[name]
		st := ReactorStatus{Name: name, Queue: entry.sub.Queue}
		var pos, head int64
		if err := store.Pool().QueryRow(ctx, reactorLedgerSQL, name).Scan(&st.Reacted, &pos, &st.LastReactedAt,
			&st.PendingJobs, &st.DiscardedJobs, &head); err != nil {
			return nil, fmt.Errorf("reactors: error reading the ledger of %s: %w", name, err)
		}
		st.Position, st.Head = eventstore.Position(pos), eventstore.Position(head)
		page, err := store.ReadAfter(ctx, st.Position, &eventstore.ReadAfterOpts{Query: &entry.sub.Query, Limit: StatusScanLimit + 1})
		if err != nil {
			return nil, fmt.Errorf("reactors: error counting the records %s has not reacted to: %w", name, err)
		}
		st.Unreacted = min(len(page.Records), StatusScanLimit)
		st.UnreactedCapped = len(page.Records) > StatusScanLimit
		out = append(out, st)
	}
	return out, nil
}

// ResetOpts select what ResetReactor forgets.
type ResetOpts struct {
	// From: forget only the reactions to records after this position.
	// Default 0: all of them.
	From eventstore.Position
	// Effects also forgets the effect keys those reactions recorded, so
	// that the effects are enqueued and run again when the reactions run
	// again. Without it, a reaction run again enqueues only effects whose
	// keys were never recorded (effects a changed reactor now plans).
	// Effect handlers must be idempotent either way. Default: false.
	Effects bool
}

// ResetResult counts what ResetReactor deleted.
type ResetResult struct {
	Reactions int64 `json:"reactions"`
	Effects   int64 `json:"effects"`
	// Replays are the named replay checkpoints of the reactor, deleted so
	// that a named replay starts over instead of resuming past the reset.
	Replays int64 `json:"replays"`
}

// forgetEffectsSQL forgets the effect keys of reactor $1 after position
// $2, and the finished sequence rows of those that were ordered, whose
// effect key is their primary key: a replanned ordered effect gets a row
// anew. An ordered effect not finished yet (waiting, running or failed)
// keeps its key and its row: it is still to run, or to be retried or
// skipped, as planned. It returns the number of keys forgotten.
const forgetEffectsSQL = `WITH gone AS (
	DELETE FROM factos_effects e WHERE e.reactor = $1 AND e.position > $2
		AND NOT EXISTS (SELECT 1 FROM factos_effect_sequences s
			WHERE s.effect_key = e.key AND s.state IN ('waiting', 'running', 'failed'))
	RETURNING e.key
), seqs AS (
	DELETE FROM factos_effect_sequences s USING gone WHERE s.effect_key = gone.key
)
SELECT count(*) FROM gone`

// resetLockSQL serializes resets of one reactor. The key space is the
// reactor's name under a prefix of its own.
const resetLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('factos.reactor.reset:' || $1, 0))`

// ResetReactor forgets what the reactor name did after opts.From: its
// reaction ledger rows (and, with opts.Effects, their effect keys) and its
// named replay checkpoints, in one transaction. It enqueues nothing:
// follow it with Replay (from opts.From) to run the reactor again.
//
// It is safe while workers run. A reaction job of the reactor that commits
// before the reset is forgotten by it and replayed; one that commits after
// records its reactions again, as a replayed reaction would have, and a
// later Replay skips them; one running across the reset waits on the
// deleted rows' unique keys and then inserts them. Either way every record
// is reacted to again at least once and, with the ledger, effects are
// enqueued at most once per recorded key. Jobs of the reactor still waiting
// in River run after the reset and react afresh.
//
// With opts.Effects, the effect keys are forgotten too, and the finished
// sequence rows of ordered effects, so that the replay runs the effects
// again; an ordered effect not finished yet is left as it is.
//
// The role needs DELETE on factos_reactions and factos_replays (and on
// factos_effects and factos_effect_sequences with opts.Effects): run it as
// the migration role, like `worker lock-strategy set`.
func (r *Registry) ResetReactor(ctx context.Context, store *eventstore.Store, name string, opts *ResetOpts) (*ResetResult, error) {
	if _, ok := r.reactors[name]; !ok {
		return nil, fmt.Errorf("reactors: %w %q (registered: %v)", ErrUnknownReactor, name, r.order)
	}
	if opts == nil {
		opts = &ResetOpts{}
	}
	if opts.From < 0 {
		return nil, fmt.Errorf("reactors: reset from a negative position %d", opts.From)
	}
	res := &ResetResult{}
	err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, resetLockSQL, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM factos_reactions WHERE reactor = $1 AND position > $2`, name, int64(opts.From))
		if err != nil {
			return err
		}
		res.Reactions = tag.RowsAffected()
		if opts.Effects {
			if err := tx.QueryRow(ctx, forgetEffectsSQL, name, int64(opts.From)).Scan(&res.Effects); err != nil {
				return err
			}
		}
		if tag, err = tx.Exec(ctx, `DELETE FROM factos_replays WHERE reactor = $1`, name); err != nil {
			return err
		}
		res.Replays = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reactors: error resetting %s: %w", name, err)
	}
	return res, nil
}
