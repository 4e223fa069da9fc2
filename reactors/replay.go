package reactors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/outbox"
)

// DefaultReplayBatch is the default number of records a replay reads per
// transaction.
const DefaultReplayBatch = 500

// ReplayOpts select what a replay enqueues.
type ReplayOpts struct {
	// Reactor to replay for. Required.
	Reactor string
	// From: records after this position, at most the log's head
	// (ErrInvalidInput otherwise). Ignored when Name has a stored
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
	// Enqueued reactions: records the reactor had not reacted to.
	Enqueued int
	// Skipped records whose reaction already ran (the reaction ledger).
	Skipped int
	// Next is the position to resume after.
	Next eventstore.Position
	// Done is set when the replay reached the end of the log.
	Done bool
}

// Replay enqueues a reactor's reactions over historical records, in
// bounded batches: one reaction job per batch, for the records whose
// reaction has not run (the factos_reactions ledger) and is not waiting in
// a reaction job. It never duplicates an effect: a reaction that runs twice
// plans its effects once, through the ledger. Each batch commits its job
// and its checkpoint together.
func (r *Registry) Replay(ctx context.Context, store *eventstore.Store, opts ReplayOpts) (*ReplayResult, error) {
	entry, ok := r.reactors[opts.Reactor]
	if !ok {
		return nil, fmt.Errorf("reactors: %w %q (registered: %v)", ErrUnknownReactor, opts.Reactor, r.order)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultReplayBatch
	}
	// A From past the log's head would be stored as the checkpoint of a
	// named replay, and its rerun would skip every event written up to it.
	switch {
	case opts.From < 0:
		return nil, &eventstore.InvalidInputError{Field: "from", Reason: "negative"}
	case opts.From > 0:
		head, err := store.HighWaterMark(ctx, 0)
		if err != nil {
			return nil, err
		}
		if opts.From > head {
			return nil, &eventstore.InvalidInputError{Field: "from", Reason: fmt.Sprintf("%d is beyond the log's head, %d", opts.From, head)}
		}
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
		enqueued, skipped, err := replayBatch(ctx, pool, entry.sub, opts, page)
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

func replayBatch(ctx context.Context, pool *pgxpool.Pool, sub outbox.Subscription, opts ReplayOpts, page *eventstore.Page) (enqueued, skipped int, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	positions := make([]int64, len(page.Records))
	for i, rec := range page.Records {
		positions[i] = int64(rec.Position)
	}
	// Done: in the reaction ledger, or in a reaction job of the reactor
	// that is still to run (a duplicate would plan nothing, through the
	// ledger, but would still be work).
	done := map[int64]bool{}
	rows, err := tx.Query(ctx, `SELECT position FROM factos_reactions WHERE reactor = $1 AND position = ANY($2)
		UNION
		SELECT (e->>'position')::int8 FROM river_job j, jsonb_array_elements(j.args->'events') e
		WHERE j.kind = '`+outbox.Kind+`' AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
			AND j.args->'reactors' ? $1 AND (e->>'position')::int8 = ANY($2)`, opts.Reactor, positions)
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

	args := outbox.ReactionArgs{Reactors: []string{opts.Reactor}, Replay: opts.Name}
	var replayed []eventstore.RawRecord
	for _, rec := range page.Records {
		if opts.Filter != nil && !opts.Filter.Matches(rec.Type, rec.Tags) {
			continue
		}
		if done[int64(rec.Position)] {
			skipped++
			continue
		}
		args.Events = append(args.Events, outbox.EventRef{Position: int64(rec.Position), Type: rec.Type})
		replayed = append(replayed, rec)
	}
	b := &pgx.Batch{}
	if len(args.Events) > 0 {
		raw, err := json.Marshal(args)
		if err != nil {
			return 0, 0, err
		}
		tags, md := replayJobLabels(replayed)
		riversql.QueueInsert(b, []riversql.Job{{Kind: outbox.Kind, Args: raw, Queue: sub.Queue, MaxAttempts: sub.MaxAttempts, Priority: sub.Priority,
			Tags: tags, Metadata: md}})
		b.Queue(riversql.NotifySQL, sub.Queue)
		enqueued = len(args.Events)
	}
	if opts.Name != "" {
		b.Queue(`INSERT INTO factos_replays (name, reactor, position, enqueued) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, enqueued = factos_replays.enqueued + excluded.enqueued, updated_at = clock_timestamp()`,
			opts.Name, opts.Reactor, int64(page.Next), enqueued)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, fmt.Errorf("error enqueuing replayed reactions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, err
	}
	return enqueued, skipped, nil
}

// maxReplayStreamTags bounds the stream tags of a replayed reaction job,
// whose records may come from as many streams as the batch is long.
const maxReplayStreamTags = 16

// replayJobLabels are the River tags and metadata of a replayed reaction
// job, as a dispatch's job has them so that River UI finds it by entity:
// its records' streams (the first maxReplayStreamTags) and types, and the
// stream, command id and trace context when every record shares them.
func replayJobLabels(recs []eventstore.RawRecord) ([]string, []byte) {
	var streams, types []string
	same := func(get func(eventstore.RawRecord) string) string {
		v := get(recs[0])
		for _, r := range recs[1:] {
			if get(r) != v {
				return ""
			}
		}
		return v
	}
	for _, r := range recs {
		if len(streams) < maxReplayStreamTags && !slices.Contains(streams, r.Stream) {
			streams = append(streams, r.Stream)
		}
		if !slices.Contains(types, r.Type) {
			types = append(types, r.Type)
		}
	}
	var trace eventstore.Metadata
	if tp := same(func(r eventstore.RawRecord) string { return r.Metadata[eventstore.MetadataTraceParent] }); tp != "" {
		trace = recs[0].Metadata
	}
	md := outbox.JobMetadata(trace, same(func(r eventstore.RawRecord) string { return r.Metadata[outbox.MetadataCommandID] }),
		same(func(r eventstore.RawRecord) string { return r.Stream }))
	raw, _ := json.Marshal(md) // a map of strings always encodes
	return riversql.Tags(slices.Concat(streams, types)...), raw
}
