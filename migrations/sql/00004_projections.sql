-- The projections package: one checkpoint row per projection, and the
-- positions an operator chose to skip. A runner applies a batch of events
-- to its view and moves the checkpoint in one transaction, after locking
-- the row and checking that the checkpoint is still the one it read: two
-- runners that both believe they lead can never apply a batch twice.

-- +goose Up
CREATE TABLE factos_projections (
    name             text        NOT NULL,
    -- Every event matching the projection's query at or below this
    -- position has been applied (or skipped by an operator).
    position         bigint      NOT NULL DEFAULT 0,
    -- Bumped by every reset and skip, so that a runner holding an older
    -- reading abandons its batch instead of writing with it.
    generation       bigint      NOT NULL DEFAULT 0,
    applied          bigint      NOT NULL DEFAULT 0,
    -- Set while an apply fails: the position it is stuck at (the first of
    -- the batch until the batch has been narrowed to one event), the last
    -- error, how many attempts failed and when the next one is due.
    failing_position bigint,
    failing_since    timestamptz,
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz,
    -- The process that last took the projection's lease.
    owner            text,
    owner_since      timestamptz,
    -- The last reset or rebuild.
    reset_at         timestamptz,
    reset_from       bigint,
    reset_by         text,
    reset_reason     text,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_projections_pkey PRIMARY KEY (name),
    CONSTRAINT factos_projections_position_check CHECK (position >= 0)
);

-- Positions a projection must not apply, each recorded with who skipped it,
-- when and why. Kept for good: a rebuild skips them again.
CREATE TABLE factos_projection_skips (
    projection text        NOT NULL,
    position   bigint      NOT NULL,
    event_id   uuid        NOT NULL,
    event_type text        NOT NULL,
    -- The error the projection was stuck with at this position, if any.
    error      text,
    skipped_by text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    skipped_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_projection_skips_pkey PRIMARY KEY (projection, position)
);
