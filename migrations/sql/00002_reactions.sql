-- Permanent ledgers of the reactors package. River's unique jobs only dedupe
-- until its cleaner deletes completed jobs (24h by default); these tables
-- remember for good which reactions ran and which effects were enqueued, so
-- a retried reaction or a replay never enqueues an effect twice.

-- +goose Up
CREATE TABLE factos_reactions (
    reactor    text        NOT NULL,
    position   bigint      NOT NULL,
    event_id   uuid        NOT NULL,
    effects    integer     NOT NULL,
    reacted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_reactions_pkey PRIMARY KEY (reactor, position)
);

-- One row per effect key ever enqueued: the effect's idempotency record.
CREATE TABLE factos_effects (
    key         text        NOT NULL,
    kind        text        NOT NULL,
    reactor     text        NOT NULL,
    position    bigint      NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_effects_pkey PRIMARY KEY (key)
);

-- Progress of named replays, updated in the transaction that enqueues each
-- batch, so an interrupted replay resumes where it stopped.
CREATE TABLE factos_replays (
    name       text        NOT NULL,
    reactor    text        NOT NULL,
    position   bigint      NOT NULL,
    enqueued   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_replays_pkey PRIMARY KEY (name)
);
