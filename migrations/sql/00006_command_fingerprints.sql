-- Command ids bound to their command, and a retention for the ledger.
--
-- fingerprint: a hash of what the command was (for the Temporal activity
-- and activities.Registry, the command's name and its JSON payload). A later
-- dispatch under the same id with another fingerprint is refused instead of
-- being answered with the first command's result. Rows written before this
-- version have none (NULL) and are accepted as before: there is nothing to
-- compare them with. A dispatch that gives no fingerprint is compared by
-- stream only, as before.
--
-- The recorded_at index serves the ledger cleaner, which deletes rows older
-- than the retention in small batches (eventstore.CommandCleaner).

-- +goose Up
ALTER TABLE factos_commands ADD COLUMN fingerprint bytea;
CREATE INDEX factos_commands_recorded_at_idx ON factos_commands (recorded_at);
