package reactors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/outbox"
)

// EffectArgs are the River job args of one effect. The kind of the job is
// EffectKindPrefix + EffectKind, so River UI lists each effect kind apart.
type EffectArgs struct {
	EffectKind string `json:"effect_kind"`
	Key        string `json:"key"`
	Reactor    string `json:"reactor"`
	Position   int64  `json:"position"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type,omitempty"`
	// OrderingKey is the effect's eventstore.PlannedEffect.OrderingKey, if any.
	OrderingKey string          `json:"ordering_key,omitempty"`
	Args        json.RawMessage `json:"args,omitempty"`
}

// Kind implements river.JobArgs.
func (a EffectArgs) Kind() string { return EffectKindPrefix + a.EffectKind }

// reactionWorker runs the reactors of a reaction job (one per dispatch, or
// per replayed batch) on its records and enqueues the effects they plan.
//
// Alone, a reaction takes two round trips: one loads the records; one, in
// a transaction of its own, records the reactions in the ledger, records
// the effect keys, inserts the effect jobs and completes the reaction job
// (one statement, then River's completion, then COMMIT, in one batch). A
// crash before the commit leaves nothing and River retries the job; a
// crash after it leaves everything, and the job is already complete. The
// ledger makes the writes idempotent: a (reactor, record) already in
// factos_reactions plans nothing again, and an effect key already in
// factos_effects is not enqueued again, so a retried, duplicated or
// replayed reaction never enqueues an effect twice.
//
// While other reactions run in the process (a backlog), a reaction first
// claims up to Config.ReactionBatchSize-1 jobs still waiting in its queue
// (never attempted, locked FOR UPDATE SKIP LOCKED in its transaction, so
// neither River's producers nor another reaction take them), loads all
// the records in one read, and writes and completes the lot in the same
// one statement batch: three round trips for the batch instead of River's
// fetch, two round trips and a completion per job. A crash rolls the
// claims back with everything else; the jobs are available again.
//
// A reactor that fails on a record holds only its own reactions back: the
// others commit, and the job is retried for the failed ones alone. Its
// effects are checked and encoded in Go first, and a panic is its error;
// should the database still refuse the statement, the reaction rolls
// back, claims its jobs again (those still waiting) and writes each
// reaction alone, in a savepoint of its own, so that only those it
// refuses again fail. A claimed job that failed is left available with
// the attempt and its error recorded, so River runs it alone next, with
// its own retries, and no later reaction claims it again.
type reactionWorker struct {
	river.WorkerDefaults[outbox.ReactionArgs]
	reg   *Registry
	store *eventstore.Store
}

// reactSQL writes a reaction in one statement: the ledger rows of the
// reactions ($1..$4), the effect keys of the reactions that were not in the
// ledger yet ($5..$8), the effect jobs of the keys that were not recorded
// yet ($9..$17, their River tags and metadata included), and the sequence
// rows of those among them that carry an ordering key ($18..$24), with
// their jobs' ids. Ordered effects' jobs are inserted pending, which River
// never fetches: the Sequencer makes them available in their key's order.
// It returns the reactors of the ledger rows it wrote, one per row, and
// the number of sequence rows.
const reactSQL = `WITH r AS (
	INSERT INTO factos_reactions (reactor, position, event_id, effects)
	SELECT * FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::int4[])
	ON CONFLICT DO NOTHING
	RETURNING reactor, position
), k AS (
	INSERT INTO factos_effects (key, kind, reactor, position)
	SELECT e.key, e.kind, e.reactor, e.position
	FROM unnest($5::text[], $6::text[], $7::text[], $8::int8[]) AS e(key, kind, reactor, position)
	JOIN r USING (reactor, position)
	ON CONFLICT DO NOTHING
	RETURNING key
), j AS (
	` + riversql.InsertPrefix + `
	SELECT a, kd, m, p, q, s::river_job_state, string_to_array(t, ',')::varchar(255)[], coalesce(md, '{}')
	FROM unnest($9::text[], $10::jsonb[], $11::text[], $12::int2[], $13::int2[], $14::text[], $15::text[], $16::text[], $17::jsonb[])
		AS x(key, a, kd, m, p, q, s, t, md)
	WHERE x.key IN (SELECT key FROM k)
	RETURNING id, args->>'key' AS key
), s AS (
	INSERT INTO factos_effect_sequences (effect_key, ordering_key, position, reactor, ordinal, kind, continue_on_failure, job_id)
	SELECT o.key, o.ordering_key, o.position, o.reactor, o.ordinal, o.kind, o.cont, j.id
	FROM unnest($18::text[], $19::text[], $20::int8[], $21::text[], $22::int4[], $23::text[], $24::bool[])
		AS o(key, ordering_key, position, reactor, ordinal, kind, cont)
	JOIN j USING (key)
	RETURNING 1
)
SELECT coalesce((SELECT array_agg(reactor) FROM r), '{}'), (SELECT count(*) FROM s)`

// claimSQL claims up to $2 reaction jobs waiting in queue $1 that were
// never attempted, in the order River's producers fetch them. The locks
// keep them from River and from other reactions until the transaction
// ends. (A job River or a claim already attempted is left to River: a job
// that fails is never claimed over and over.)
const claimSQL = `SELECT id, args, metadata FROM river_job
WHERE state = 'available' AND queue = $1 AND scheduled_at <= now() AND kind = '` + outbox.Kind + `' AND attempt = 0
ORDER BY priority, scheduled_at, id
LIMIT $2
FOR UPDATE SKIP LOCKED`

// finishClaimedSQL records the attempt of the claimed jobs $1, as River's
// fetch would (attempted by $3), and completes those whose error in $2 is
// empty; the others stay available with their error recorded, as River
// records an attempt's error.
const finishClaimedSQL = `UPDATE river_job j SET attempt = j.attempt + 1, attempted_at = now(),
	attempted_by = array_append(j.attempted_by, $3::text),
	state = CASE WHEN c.err = '' THEN 'completed'::river_job_state ELSE j.state END,
	finalized_at = CASE WHEN c.err = '' THEN now() ELSE j.finalized_at END,
	errors = CASE WHEN c.err = '' THEN j.errors
		ELSE array_append(j.errors, jsonb_build_object('at', now(), 'attempt', j.attempt + 1, 'error', c.err, 'trace', '')) END
FROM unnest($1::int8[], $2::text[]) AS c(id, err)
WHERE j.id = c.id AND j.state = 'available'`

// reactionJob is one reaction job a reaction handles: River's, or one it
// claimed.
type reactionJob struct {
	id       int64
	args     outbox.ReactionArgs
	md       map[string]string
	ctx      context.Context // carries the job's span
	span     trace.Span
	attempt  int
	records  []eventstore.RawRecord
	failures []string
	// released: a claimed job the reaction let go of (see restart).
	released bool
}

// failure is the job's failures in one message; empty if none.
func (j *reactionJob) failure() string { return strings.Join(j.failures, "; ") }

func (j *reactionJob) err() error {
	if len(j.failures) == 0 {
		return nil
	}
	return errors.New(j.failure())
}

// reaction is what one (reactor, record) pair planned.
type reaction struct {
	job     *reactionJob
	reactor string
	rec     eventstore.RawRecord
	effects []eventstore.PlannedEffect
	// The effects' job args and metadata, encoded (see encode).
	args, metadata [][]byte
	// failed: its rows failed the statement (see reactOneByOne).
	failed bool
}

// encode encodes the reaction's effect jobs' args and metadata: done per
// reaction, before the statement, so that an effect JSON cannot encode
// fails its own reaction and no other.
func (rc *reaction) encode() error {
	rc.args, rc.metadata = make([][]byte, len(rc.effects)), make([][]byte, len(rc.effects))
	for i, e := range rc.effects {
		raw, err := json.Marshal(e.Args)
		if err != nil {
			return fmt.Errorf("error encoding the args of effect %d (%s): %w", i, e.Kind, err)
		}
		if rc.args[i], err = json.Marshal(EffectArgs{EffectKind: e.Kind, Key: e.Key, Reactor: rc.reactor, Position: int64(rc.rec.Position),
			EventID: rc.rec.ID.String(), EventType: rc.rec.Type, OrderingKey: e.OrderingKey, Args: raw}); err != nil {
			return err
		}
		if rc.metadata[i], err = effectJobMetadata(rc.job.ctx, rc.job.md, rc.rec, e.OrderingKey); err != nil {
			return err
		}
	}
	return nil
}

func (w *reactionWorker) Work(ctx context.Context, job *river.Job[outbox.ReactionArgs]) (err error) {
	reg := w.reg
	own := reg.startReaction(ctx, job.ID, job.Args, job.Metadata, job.Attempt)
	defer func() { endJobSpan(own.span, err) }()
	started := time.Now()
	conn, err := w.store.Pool().Acquire(ctx)
	if err != nil {
		return fmt.Errorf("error acquiring a connection: %w", err)
	}
	defer conn.Release()
	// Whatever ends the reaction before its commit rolls back its claims
	// with the rest.
	inTx := false
	defer func() {
		if inTx {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	jobs := []*reactionJob{own}
	n := reg.reacting.Add(1)
	defer reg.reacting.Add(-1)
	if n > 1 && reg.cfg.ReactionBatchSize > 1 {
		inTx = true
		claimed, err := reg.claim(ctx, conn, job, reg.cfg.ReactionBatchSize-1)
		if err != nil {
			return err
		}
		jobs = append(jobs, claimed...)
	}
	// Each claimed job's span ends with its own outcome once committed,
	// and with the reaction's error if it never was.
	committed := false
	defer func() {
		for _, j := range jobs[1:] {
			switch {
			case j.released:
				endJobSpan(j.span, errReleased)
			case committed:
				endJobSpan(j.span, j.err())
			default:
				endJobSpan(j.span, err)
			}
		}
	}()

	var ps []eventstore.Position
	for _, j := range jobs {
		ps = append(ps, positions(j.args.Events)...)
	}
	records, err := w.store.ReadPositionsWith(ctx, conn, ps...)
	if err != nil {
		return fmt.Errorf("error loading records %v: %w", ps, err)
	}
	byPosition := make(map[eventstore.Position]eventstore.RawRecord, len(records))
	for _, r := range records {
		byPosition[r.Position] = r
	}
	for _, j := range jobs {
		for _, e := range j.args.Events {
			if r, ok := byPosition[eventstore.Position(e.Position)]; ok {
				j.records = append(j.records, r)
			}
		}
		if missing := len(j.args.Events) - len(j.records); missing > 0 {
			// The log is append-only: a missing record means the job was
			// built for another database. Retrying cannot help.
			err := fmt.Errorf("%d of the job's %d records not found: built for another database?", missing, len(j.args.Events))
			if j == own {
				return river.JobCancel(err)
			}
			j.failures = append(j.failures, err.Error())
		}
	}
	if err := reg.step("loaded", jobs); err != nil {
		return err
	}

	// React, in Go: every reactor of each job on every record of the job
	// it subscribes to. Reactors are pure, so reacting again to pairs
	// already in the ledger costs only the time; the statement skips
	// them.
	var reactions []reaction
	for _, j := range jobs {
		if len(j.failures) > 0 {
			continue
		}
		reactions = append(reactions, reg.react(j, started)...)
	}
	if err := reg.step("reacted", jobs); err != nil {
		return err
	}

	// One round trip, in the transaction of the claims or one of its own.
	// (A failed statement leaves the connection in a failed transaction,
	// which the deferred ROLLBACK ends.)
	b := &pgx.Batch{}
	if !inTx {
		b.Queue("BEGIN")
		inTx = true
	}
	var fresh []string
	var sequenced int64
	var stmtErr error
	b.Queue(reactSQL, reg.reactParams(reactions)...).QueryRow(func(row pgx.Row) error {
		stmtErr = row.Scan(&fresh, &sequenced)
		return stmtErr
	})
	completed := reg.queueFinish(b, job, jobs, reactions)
	if err := reg.step("written", jobs); err != nil {
		return err
	}
	b.Queue("COMMIT")
	err = conn.SendBatch(ctx, b).Close()
	if err != nil && stmtErr != nil && (len(reactions) > 1 || len(jobs) > 1) && ctx.Err() == nil {
		// The database refused the statement (a constraint, a value it
		// cannot store): one reaction's rows fail it for all. Start over
		// and write each reaction alone, so that only the ones it
		// refuses again fail. Rare, so the common path pays nothing for
		// it (no savepoint).
		reg.cfg.Logger.WarnContext(ctx, "reactors: the reactions' statement failed; writing each reaction alone", "error", stmtErr, "reactions", len(reactions))
		reactions, err = reg.restart(ctx, conn, jobs, reactions)
		if err == nil {
			fresh, sequenced, err = reg.reactOneByOne(ctx, conn, reactions)
		}
		if err == nil {
			b = &pgx.Batch{}
			completed = reg.queueFinish(b, job, jobs, reactions)
			b.Queue("COMMIT")
			err = conn.SendBatch(ctx, b).Close()
		}
	}
	if err != nil {
		return fmt.Errorf("error recording the reactions: %w", err)
	}
	inTx, committed = false, true
	reg.cfg.Metrics.claimedJobs(len(jobs) - 1)
	// Counted once the transaction committed; pairs that were in the
	// ledger already are duplicates.
	counts := map[string]int{}
	for _, name := range fresh {
		counts[name]++
	}
	for _, r := range reactions {
		if r.failed {
			continue
		}
		if counts[r.reactor] > 0 {
			counts[r.reactor]--
			reg.cfg.Metrics.reaction(r.reactor, "reacted")
		} else {
			reg.cfg.Metrics.reaction(r.reactor, "duplicate")
		}
	}
	// A completed reaction may move the sequencer's watermark; one that
	// planned ordered effects has work for it.
	if sequenced > 0 {
		reg.seq.Wake()
	} else if completed {
		reg.seq.wakeIfWaiting()
	}
	if err := reg.step("committed", jobs); err != nil {
		return err
	}
	return own.err()
}

// queueFinish queues what follows the reactions' statement: the effect
// queues' notifications, the completion of the reaction's own job if it
// has no failure, and the attempt of each claimed job (completed, or left
// available with its failures). It reports whether a job completes.
func (r *Registry) queueFinish(b *pgx.Batch, job *river.Job[outbox.ReactionArgs], jobs []*reactionJob, reactions []reaction) bool {
	for _, q := range r.effectQueues(reactions) {
		r.notify.Queue(b, q)
	}
	completed := len(jobs[0].failures) == 0
	if completed {
		// The job completes with its reactions: River's own completion,
		// when Work returns, then finds it no longer running.
		b.Queue(riversql.CompleteSQL, job.ID)
	}
	if len(jobs) > 1 {
		ids := make([]int64, 0, len(jobs)-1)
		errs := make([]string, 0, len(jobs)-1)
		for _, j := range jobs[1:] {
			if j.released {
				continue
			}
			ids = append(ids, j.id)
			errs = append(errs, j.failure())
			completed = completed || len(j.failures) == 0
		}
		b.Queue(finishClaimedSQL, ids, errs, attemptedBy(job))
	}
	return completed
}

// errReleased ends the span of a claimed job that a reaction let go of:
// another reaction, or River, runs it.
var errReleased = errors.New("claim released after the reactions' statement failed; another reaction runs the job")

// reclaimSQL locks again the jobs a reaction had claimed, those still
// waiting: a rollback released them.
const reclaimSQL = `SELECT id FROM river_job WHERE id = ANY($1) AND state = 'available' AND attempt = 0
FOR UPDATE SKIP LOCKED`

// restart rolls back the reaction's transaction and begins another, in
// which it claims again the jobs it had claimed; a job another reaction
// or River took meanwhile is released (left out of this reaction). It
// returns the reactions of the jobs still held.
func (r *Registry) restart(ctx context.Context, conn *pgxpool.Conn, jobs []*reactionJob, reactions []reaction) ([]reaction, error) {
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(jobs)-1)
	for _, j := range jobs[1:] {
		ids = append(ids, j.id)
	}
	held := map[int64]bool{}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(reclaimSQL, ids).Query(func(rows pgx.Rows) error {
		var id int64
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			held[id] = true
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	for _, j := range jobs[1:] {
		j.released = !held[j.id]
	}
	return slices.DeleteFunc(reactions, func(rc reaction) bool { return rc.job.released }), nil
}

// reactOneByOne writes each reaction alone, each in a savepoint of its
// own, so that one the database refuses rolls back alone and goes to its
// job's failures. It returns what the statements returned for the others.
func (r *Registry) reactOneByOne(ctx context.Context, conn *pgxpool.Conn, reactions []reaction) ([]string, int64, error) {
	var fresh []string
	var sequenced int64
	for i := range reactions {
		rc := &reactions[i]
		var f []string
		var n int64
		var oneErr error
		b := &pgx.Batch{}
		b.Queue("SAVEPOINT factos_reaction")
		b.Queue(reactSQL, r.reactParams(reactions[i:i+1])...).QueryRow(func(row pgx.Row) error {
			oneErr = row.Scan(&f, &n)
			return oneErr
		})
		b.Queue("RELEASE SAVEPOINT factos_reaction")
		err := conn.SendBatch(ctx, b).Close()
		if err == nil {
			fresh, sequenced = append(fresh, f...), sequenced+n
			continue
		}
		if oneErr == nil || ctx.Err() != nil {
			return nil, 0, err // not the reaction's own statement
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT factos_reaction"); err != nil {
			return nil, 0, err
		}
		rc.failed = true
		r.cfg.Metrics.reaction(rc.reactor, "error")
		rc.job.failures = append(rc.job.failures, fmt.Sprintf("reactor %s failed on record %d: error recording its reaction: %v", rc.reactor, rc.rec.Position, oneErr))
	}
	return fresh, sequenced, nil
}

// startReaction starts the span of a reaction job.
func (r *Registry) startReaction(ctx context.Context, id int64, args outbox.ReactionArgs, metadata []byte, attempt int, attrs ...attribute.KeyValue) *reactionJob {
	ctx, span := r.startJobSpan(ctx, "factos.reaction", metadata, append(attrs,
		attribute.StringSlice("factos.reactors", args.Reactors), attribute.Int64Slice("factos.positions", args.Positions()),
		attribute.String("factos.stream", args.Stream), attribute.Int64("river.job.id", id), attribute.Int("river.job.attempt", attempt))...)
	return &reactionJob{id: id, args: args, md: jobMetadata(metadata), ctx: ctx, span: span, attempt: attempt}
}

// claim begins the reaction's transaction on conn and claims up to limit
// jobs waiting in the queue of job.
func (r *Registry) claim(ctx context.Context, conn *pgxpool.Conn, job *river.Job[outbox.ReactionArgs], limit int) ([]*reactionJob, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	var claimed []*reactionJob
	claimedBy := attribute.Int64("factos.reaction.claimed_by", job.ID)
	b.Queue(claimSQL, job.Queue, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				id      int64
				raw, md []byte
				args    outbox.ReactionArgs
			)
			if err := rows.Scan(&id, &raw, &md); err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &args); err != nil {
				return fmt.Errorf("error decoding the args of reaction job %d: %w", id, err)
			}
			claimed = append(claimed, r.startReaction(ctx, id, args, md, 1, claimedBy))
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		for _, j := range claimed {
			endJobSpan(j.span, err)
		}
		return nil, fmt.Errorf("error claiming reaction jobs: %w", err)
	}
	return claimed, nil
}

// react runs every reactor of a job on every record of the job it
// subscribes to, and returns what they planned; failures go to the job.
func (r *Registry) react(j *reactionJob, started time.Time) []reaction {
	var out []reaction
	for _, name := range j.args.Reactors {
		entry, ok := r.reactors[name]
		if !ok {
			j.failures = append(j.failures, fmt.Sprintf("reactor %s is not registered in this process", name))
			continue
		}
		for _, rec := range j.records {
			if !entry.sub.Query.Matches(rec.Type, rec.Tags) {
				continue
			}
			if j.attempt == 1 {
				r.cfg.Metrics.observeLag(name, started.Sub(rec.RecordedAt))
			}
			rc := reaction{job: j, reactor: name, rec: rec}
			effects, err := entry.react(rec)
			if err == nil {
				err = r.checkEffects(name, effects)
			}
			if err == nil {
				rc.effects = effects
				err = rc.encode()
			}
			if err != nil {
				r.cfg.Metrics.reaction(name, "error")
				j.failures = append(j.failures, fmt.Sprintf("reactor %s failed on record %d: %v", name, rec.Position, err))
				continue
			}
			out = append(out, rc)
		}
	}
	return out
}

// attemptedBy is the River client running job: the last of its attempts'.
func attemptedBy(job *river.Job[outbox.ReactionArgs]) string {
	if n := len(job.AttemptedBy); n > 0 {
		return job.AttemptedBy[n-1]
	}
	return "factos"
}

func positions(events []outbox.EventRef) []eventstore.Position {
	out := make([]eventstore.Position, len(events))
	for i, e := range events {
		out[i] = eventstore.Position(e.Position)
	}
	return out
}

// checkEffects refuses effects of unregistered kinds, without a key or
// with a malformed ordering key (an *eventstore.InvalidInputError).
func (r *Registry) checkEffects(reactor string, effects []eventstore.PlannedEffect) error {
	for i, e := range effects {
		if _, ok := r.effects[e.Kind]; !ok {
			return fmt.Errorf("reactor %s planned effect %d of unregistered kind %q", reactor, i, e.Kind)
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("reactor %s planned effect %d (%s): %w", reactor, i, e.Kind, err)
		}
	}
	return nil
}

// reactParams builds reactSQL's parameters from encoded reactions. An
// effect key planned twice (by one reaction, or by two of the jobs) runs
// once: the first wins.
func (r *Registry) reactParams(reactions []reaction) []any {
	var (
		lReactor   []string
		lPosition  []int64
		lEventID   [][16]byte
		lEffects   []int32
		eKey       []string
		eKind      []string
		eReactor   []string
		ePosition  []int64
		jKey       []string
		jArgs      [][]byte
		jKind      []string
		jAttempts  []int16
		jPriority  []int16
		jQueue     []string
		jState     []string
		jTags      []string
		jMeta      [][]byte
		sKey       []string
		sOrdering  []string
		sPosition  []int64
		sReactor   []string
		sOrdinal   []int32
		sKind      []string
		sContinue  []bool
		plannedKey = map[string]bool{}
	)
	for _, rc := range reactions {
		lReactor = append(lReactor, rc.reactor)
		lPosition = append(lPosition, int64(rc.rec.Position))
		lEventID = append(lEventID, [16]byte(rc.rec.ID))
		lEffects = append(lEffects, int32(len(rc.effects)))
		for i, e := range rc.effects {
			if plannedKey[e.Key] {
				continue
			}
			plannedKey[e.Key] = true
			h := r.effects[e.Kind]
			eKey = append(eKey, e.Key)
			eKind = append(eKind, e.Kind)
			eReactor = append(eReactor, rc.reactor)
			ePosition = append(ePosition, int64(rc.rec.Position))
			jKey = append(jKey, e.Key)
			jArgs = append(jArgs, rc.args[i])
			jKind = append(jKind, EffectKindPrefix+e.Kind)
			jAttempts = append(jAttempts, int16(h.maxAttempts))
			jPriority = append(jPriority, 1)
			jQueue = append(jQueue, h.queue)
			jTags = append(jTags, effectJobTags(rc.rec, e.OrderingKey))
			jMeta = append(jMeta, rc.metadata[i])
			if e.OrderingKey == "" {
				jState = append(jState, "available")
				continue
			}
			jState = append(jState, "pending")
			sKey = append(sKey, e.Key)
			sOrdering = append(sOrdering, e.OrderingKey)
			sPosition = append(sPosition, int64(rc.rec.Position))
			sReactor = append(sReactor, rc.reactor)
			sOrdinal = append(sOrdinal, int32(i))
			sKind = append(sKind, e.Kind)
			sContinue = append(sContinue, h.onFailure == ContinueSequence)
		}
	}
	return []any{lReactor, lPosition, lEventID, lEffects, eKey, eKind, eReactor, ePosition,
		jKey, jArgs, jKind, jAttempts, jPriority, jQueue, jState, jTags, jMeta,
		sKey, sOrdering, sPosition, sReactor, sOrdinal, sKind, sContinue}
}

// effectQueues are the queues the reactions' effects go to.
func (r *Registry) effectQueues(reactions []reaction) []string {
	var out []string
	seen := map[string]bool{}
	for _, rc := range reactions {
		for _, e := range rc.effects {
			if q := r.effects[e.Kind].queue; !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	return out
}

// step calls the test fault at a step of a reaction, once for each job
// the reaction holds (with the job's first position): a crash there ends
// every one of them, so each sees it. The first error is the crash.
func (r *Registry) step(name string, jobs []*reactionJob) error {
	if r.fault == nil {
		return nil
	}
	var crash error
	for _, j := range jobs {
		if len(j.args.Events) == 0 {
			continue
		}
		if err := r.fault(name, j.args.Events[0].Position); err != nil && crash == nil {
			crash = err
		}
	}
	return crash
}

// effectWorker runs one effect with its handler.
type effectWorker struct {
	river.WorkerDefaults[EffectArgs]
	reg   *Registry
	entry *effectEntry
}

func (w *effectWorker) Timeout(*river.Job[EffectArgs]) time.Duration { return w.entry.timeout }

func (w *effectWorker) Work(ctx context.Context, job *river.Job[EffectArgs]) (err error) {
	ctx, span := w.reg.startJobSpan(ctx, "factos.effect "+w.entry.kind, job.Metadata,
		attribute.String("factos.effect.kind", w.entry.kind), attribute.String("factos.effect.key", job.Args.Key),
		attribute.String("factos.reactor", job.Args.Reactor), attribute.String("factos.event.type", job.Args.EventType),
		attribute.Int64("factos.position", job.Args.Position), attribute.Int64("river.job.id", job.ID), attribute.Int("river.job.attempt", job.Attempt))
	defer func() { endJobSpan(span, err) }()
	m := w.reg.cfg.Metrics
	if job.Attempt > 1 {
		m.effectRetry(w.entry.kind)
	}
	start := time.Now()
	err = w.entry.handle(ctx, &job.Args, job.Attempt)
	if err == nil && job.Args.OrderingKey != "" {
		err = w.finishOrdered(ctx, job)
	}
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

// finishOrdered marks an ordered effect done and completes its job in one
// transaction, so that the sequencer never sees a completed job whose
// effect is still running, nor the reverse; then it wakes the sequencer
// for the key's next effect. Should the commit fail, the job is retried
// and the (idempotent) effect runs again.
func (w *effectWorker) finishOrdered(ctx context.Context, job *river.Job[EffectArgs]) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sequenceDoneSQL, job.Args.Key)
	b.Queue(riversql.CompleteSQL, job.ID)
	b.Queue("COMMIT")
	if err := w.reg.store.Pool().SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("error completing ordered effect %s: %w", job.Args.Key, err)
	}
	w.reg.seq.Wake()
	return nil
}

// sequenceDoneSQL marks an ordered effect done.
const sequenceDoneSQL = `UPDATE factos_effect_sequences SET state = 'done', finished_at = clock_timestamp() WHERE effect_key = $1`
