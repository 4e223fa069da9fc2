-- The ticket example's own tables. IF NOT EXISTS: databases migrated
-- before these were versioned already have them.

-- +goose Up

-- One row per announced sale, keyed by the effect's idempotency key, so
-- that running the effect twice announces once.
CREATE TABLE IF NOT EXISTS ticket_announcements (
    effect_key   text PRIMARY KEY,
    concert_id   text NOT NULL,
    buyer_id     text NOT NULL,
    seat         integer NOT NULL,
    announced_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The concert_sales projection's view: one row per concert, and one per
-- concert and buyer.
CREATE TABLE IF NOT EXISTS ticket_sales (
    concert_id text    PRIMARY KEY,
    -- NULL until the concert's ConcertScheduled is applied.
    capacity   integer,
    seats_sold integer NOT NULL DEFAULT 0,
    buyers     integer NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ticket_sales_buyers (
    concert_id text    NOT NULL,
    buyer_id   text    NOT NULL,
    seats      integer NOT NULL,
    PRIMARY KEY (concert_id, buyer_id)
);
