-- Effects in order per entity (reactors package). One row per effect
-- planned with an ordering key, written by the reaction that plans it, in
-- the statement that records its effect key and inserts its River job in
-- River's pending state (which River never fetches). The sequencer makes
-- a key's head available once every earlier effect of the key has
-- finished and no reaction below its position can still plan an earlier
-- one; the effect worker marks it done in the transaction that completes
-- its job.

-- +goose Up
CREATE TABLE factos_effect_sequences (
    ordering_key text        NOT NULL,
    -- The order of a key's effects: the position of the record that
    -- planned the effect, the reactor, and the effect's index in what the
    -- reactor planned for that record.
    position     bigint      NOT NULL,
    reactor      text        NOT NULL,
    ordinal      integer     NOT NULL,
    effect_key   text        NOT NULL,
    kind         text        NOT NULL,
    job_id       bigint      NOT NULL,
    -- waiting: planned, its job pending; running: released, its job
    -- available, running or retrying; done: its job completed; failed:
    -- its job was discarded or cancelled, and the key halts here;
    -- skipped: failed or skipped by an operator, and the key went on.
    state        text        NOT NULL DEFAULT 'waiting',
    -- The effect kind's OnFailure policy when the effect was planned:
    -- whether the key goes on past it if it fails for good.
    continue_on_failure boolean NOT NULL DEFAULT false,
    planned_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_at  timestamptz,
    finished_at  timestamptz,
    CONSTRAINT factos_effect_sequences_pkey PRIMARY KEY (effect_key),
    CONSTRAINT factos_effect_sequences_state_check
        CHECK (state IN ('waiting', 'running', 'done', 'failed', 'skipped'))
);

-- The unfinished effects of every key, in sequence order: a key's head is
-- its first row here.
CREATE INDEX factos_effect_sequences_unfinished
    ON factos_effect_sequences (ordering_key, position, reactor, ordinal)
    WHERE state IN ('waiting', 'running', 'failed');

-- An effect's sequence row from its job (the River UI and admin paths).
CREATE INDEX factos_effect_sequences_job ON factos_effect_sequences (job_id);
