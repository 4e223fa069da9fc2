package reactors

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
)

// DefaultReplayBatch is the default number of records a replay reads per
// transaction.
const DefaultReplayBatch = 500

// ReplayOpts select what a replay enqueues.
type ReplayOpts struct {
	// Reactor to replay for. Required.
	Reactor string
	// From: records after this position. Ignored when Name has a stored
	// checkpoint, which wins so that a rerun resumes.
	From eventstore.Position
	// Filter further restricts the reactor's subscription. Nil: every
	// record the reactor subscribes to.
	Filter *eventstore.Query
	// BatchSize records per transaction. Default: DefaultReplayBatch.
	BatchSize int
	// MaxBatches stops after that many batches (0: until caught up), for
	// callers that spread a backfill over time.
	MaxBatches int
	// Name, if set, stores the replay's progress under this name in the
	// transaction of each batch; a later replay with the same name resumes
	// after the last committed batch.
	Name string
}

// ReplayResult reports what a replay did.
type ReplayResult struct {
	// Enqueued reaction jobs.
	Enqueued int
	// Skipped records whose reaction already ran or is already waiting.
	Skipped int
	// Next is the position to resume after.
	Next eventstore.Position
	// Done is set when the replay reached the end of the log.
	Done bool
}

// Replay enqueues reaction jobs for a reactor over historical records, in
// bounded batches. It never duplicates a reaction: records whose reaction
// already ran (the factos_reactions ledger) are skipped, and a reaction job
// that is still waiting is found by River's unique key. Each batch commits
// its jobs and its checkpoint together.
func (r *Registry) Replay(ctx context.Context, store *eventstore.Store, client *river.Client[pgx.Tx], opts ReplayOpts) (*ReplayResult, error) {
	entry, ok := r.reactors[opts.Reactor]
	if !ok {
		return nil, fmt.Errorf("reactors: unknown reactor %q", opts.Reactor)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultReplayBatch
	}
	ob, err := outbox.New(client, []outbox.Subscription{entry.sub})
	if err != nil {
		return nil, err
	}
	pool := store.Pool()
	res := &ReplayResult{Next: opts.From}
	if opts.Name != "" {
		err := pool.QueryRow(ctx, `SELECT position FROM factos_replays WHERE name = $1 AND reactor = $2`, opts.Name, opts.Reactor).Scan(&res.Next)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("error reading replay checkpoint: %w", err)
		}
	}
	for batch := 0; opts.MaxBatches == 0 || batch < opts.MaxBatches; batch++ {
		page, err := store.ReadAfter(ctx, res.Next, &eventstore.ReadAfterOpts{Query: &entry.sub.Query, Limit: opts.BatchSize})
		if err != nil {
			return res, err
		}
		enqueued, skipped, err := replayBatch(ctx, pool, client, ob, opts, page)
		if err != nil {
			return res, err
		}
		res.Enqueued += enqueued
		res.Skipped += skipped
		res.Next = page.Next
		if len(page.Records) < opts.BatchSize {
			res.Done = true
			break
		}
	}
	return res, nil
}

func replayBatch(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], ob *outbox.Outbox, opts ReplayOpts, page *eventstore.Page) (enqueued, skipped int, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	positions := make([]int64, len(page.Records))
	for i, rec := range page.Records {
		positions[i] = int64(rec.Position)
	}
	done := map[int64]bool{}
	rows, err := tx.Query(ctx, `SELECT position FROM factos_reactions WHERE reactor = $1 AND position = ANY($2)`, opts.Reactor, positions)
	if err != nil {
		return 0, 0, fmt.Errorf("error reading the reaction ledger: %w", err)
	}
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, 0, err
		}
		done[p] = true
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}

	var params []river.InsertManyParams
	for _, rec := range page.Records {
		if opts.Filter != nil && !opts.Filter.Matches(rec.Type, rec.Tags) {
			continue
		}
		if done[int64(rec.Position)] {
			skipped++
			continue
		}
		p, _ := ob.Params(opts.Reactor, rec)
		params = append(params, p)
	}
	if len(params) > 0 {
		results, err := client.InsertManyTx(ctx, tx, params)
		if err != nil {
			return 0, 0, fmt.Errorf("error enqueuing replayed reactions: %w", err)
		}
		for _, res := range results {
			if res.UniqueSkippedAsDuplicate {
				skipped++
			} else {
				enqueued++
			}
		}
	}
	if opts.Name != "" {
		_, err := tx.Exec(ctx, `INSERT INTO factos_replays (name, reactor, position, enqueued) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, enqueued = factos_replays.enqueued + excluded.enqueued, updated_at = clock_timestamp()`,
			opts.Name, opts.Reactor, int64(page.Next), enqueued)
		if err != nil {
			return 0, 0, fmt.Errorf("error storing replay checkpoint: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, err
	}
	return enqueued, skipped, nil
}
