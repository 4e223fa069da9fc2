// Package reactors runs pure reactors on committed records and then the
// effects they plan, as durable River jobs.
//
// # Flow
//
//	dispatch tx ── outbox ──▶ one reaction job per dispatch (kind factos.reactions)
//	reaction job: load its records → decode → every reactor of the job (pure) → effects
//	  one tx, one round trip: ledger rows + effect-key rows + effect jobs + the job's completion
//	  (with a backlog: the same for up to ReactionBatchSize jobs it claims, in one tx)
//	effect job (kind factos.effect.<kind>): handler does the IO, with retries
//
// A reaction job carries the dispatch's records that some reactor wants
// and those reactors (River UI shows them: stream, positions and types,
// reactor names). A reaction either commits everything (its ledger rows,
// its effect keys, its effect jobs and its own completion) or nothing;
// River retries it after a crash. A reactor that fails on a record holds
// back only its own reaction to that record, however it fails — an error,
// a panic, an effect that PlannedEffect.Validate refuses or whose Args
// JSON cannot encode, rows the database refuses: the others commit, and
// the retry redoes the failed ones (TestReactorFailureHoldsBackOnlyItself).
// Effect keys are recorded forever in factos_effects, so an
// effect planned twice — by a retried reaction, a duplicate job or a replay
// — is enqueued once. River's unique jobs alone would forget once its
// cleaner deletes completed jobs.
//
// Reaction and effect jobs are written with SQL of their own against
// River's job table (internal/riversql, tested against River's own
// inserts), so that the outbox costs the dispatch no round trip and no
// statement (its job row is written by the statement that inserts the
// events) and a reaction costs two round trips.
//
// # Batches
//
// River runs one job per worker, and each job pays River's fetch, its own
// transaction and its completion: about 1 ms of the database's time per
// reaction, which on small machines is less than the log's dispatch
// rate. So while other reactions run in the process (River has a
// backlog), a reaction claims up to Config.ReactionBatchSize-1 more
// reaction jobs that wait in its queue and were never attempted, with
// SELECT ... FOR UPDATE SKIP LOCKED inside its transaction, reacts to all
// their records and commits their reactions and their completions with
// its own: three round trips and one statement of each kind for the lot.
// Nothing else changes. A crash rolls the claims back with the rest (the
// jobs are available again); a claimed job whose reactor failed keeps
// the attempt and its error, as River would record them, and stays
// available for River to run alone with its own retries; the sequencer
// still sees every job either waiting or complete with its effects.
// River UI shows a claimed job completed after one attempt, by the
// worker that claimed it. factos_reaction_jobs_claimed_total counts them;
// REACTION_BATCH_SIZE sets the size in the worker.
//
// # Effects
//
// An EffectHandler receives the effect's Key: use it to make the IO
// idempotent (an INSERT ... ON CONFLICT DO NOTHING keyed by it, an
// Idempotency-Key header, a workflow id). A handler error is
// retried with River's backoff; Permanent(err) cancels the job at once;
// after MaxAttempts River discards the job, which stays visible, with every
// error, in River UI: the dead letter. Requeue it from the UI once fixed.
//
// # Effects in order
//
// An effect with an OrderingKey (eventstore.PlannedEffect) runs in its key's
// sequence: one at a time, in the order of the positions of the records
// that planned them (and, for one record, in the order planned). Its job
// is inserted in River's pending state, with a row in
// factos_effect_sequences; the Sequencer (Registry.Sequencer, started with
// the River client) makes a key's head available once every earlier
// effect of the key has finished and no reaction of a lower position is
// still to complete. A head that fails for good halts its key
// (HaltSequence, the default) or is skipped (ContinueSequence), as its
// EffectHandler's OnFailure says. Its jobs carry SequenceTag(key) as a tag
// and the key in their metadata. docs/effects.md has the argument and the
// costs.
//
// # Operating
//
// Replay enqueues a reactor's reactions over history in bounded, resumable
// batches without duplicating reactions already done. ReactorStatuses
// reports each reactor's ledger position, lag and reaction jobs;
// ResetReactor forgets a reactor's reactions after a position (and, if
// asked, their effect keys, so that the effects run again), in one
// transaction, safely beside running workers; a Replay then runs them
// again. `worker reactors status|replay|reset` is their command line.
// NewMetrics exports reaction lag, effect latency, retries, discards and
// job counts to Prometheus. River UI shows the jobs (factosfx serves it).
package reactors
