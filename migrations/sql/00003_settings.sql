-- Settings of the event store that every process writing to the database
-- must agree on. The first store to use the database records its lock
-- strategy here; a store configured with another refuses to run.

-- +goose Up
CREATE TABLE factos_settings (
    name       text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT factos_settings_pkey PRIMARY KEY (name)
);
