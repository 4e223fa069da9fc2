-- The append-only event log, its tag index and the command ledger.
-- Forward-only: there is no Down section on purpose. Facts are never undone.

-- +goose Up
CREATE TABLE factos_events (
    -- Global order. Gaps are allowed (rolled-back inserts burn values); CACHE 1
    -- keeps positions increasing in the order they are drawn across sessions,
    -- which the catch-up barrier relies on.
    position    bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    id          uuid        NOT NULL,
    stream      text        NOT NULL,
    revision    bigint      NOT NULL,
    type        text        NOT NULL,
    version     integer     NOT NULL,
    tags        text[]      NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}',
    data        bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_events_id_key UNIQUE (id),
    CONSTRAINT factos_events_stream_revision_key UNIQUE (stream, revision),
    CONSTRAINT factos_events_revision_check CHECK (revision > 0)
);

-- Types-only query items and the type intent of readers.
CREATE INDEX factos_events_type_position_idx ON factos_events (type, position);

-- One row per (tag, event). The type is copied so that types+tags items are
-- answered from this index alone (index-only scans).
CREATE TABLE factos_event_tags (
    tag      text   NOT NULL,
    position bigint NOT NULL,
    type     text   NOT NULL,
    CONSTRAINT factos_event_tags_pkey PRIMARY KEY (tag, position) INCLUDE (type)
);

-- Commands already dispatched under a caller-chosen id: a retried command
-- answers from here instead of deciding twice.
CREATE TABLE factos_commands (
    id          text        NOT NULL,
    stream      text        NOT NULL,
    positions   bigint[]    NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_commands_pkey PRIMARY KEY (id)
);

-- The log is append-only: refuse updates, deletes and truncation outright so
-- that no code path, ours or an operator's, can rewrite history by accident.
-- +goose StatementBegin
CREATE FUNCTION factos_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'factos: % on % is not allowed: the event log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER factos_events_append_only
    BEFORE UPDATE OR DELETE ON factos_events
    FOR EACH ROW EXECUTE FUNCTION factos_refuse_rewrite();
CREATE TRIGGER factos_events_no_truncate
    BEFORE TRUNCATE ON factos_events
    FOR EACH STATEMENT EXECUTE FUNCTION factos_refuse_rewrite();
CREATE TRIGGER factos_event_tags_append_only
    BEFORE UPDATE OR DELETE ON factos_event_tags
    FOR EACH ROW EXECUTE FUNCTION factos_refuse_rewrite();
CREATE TRIGGER factos_event_tags_no_truncate
    BEFORE TRUNCATE ON factos_event_tags
    FOR EACH STATEMENT EXECUTE FUNCTION factos_refuse_rewrite();
