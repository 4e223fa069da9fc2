package bench

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Set-based loading: events and their tag rows written straight into the
// tables with INSERT ... SELECT generate_series, a hundred thousand rows a
// statement, instead of one dispatch per event. The tables' triggers refuse
// only UPDATE, DELETE and TRUNCATE. The rows are what the store and the
// tickets codec would have written (types, tags, streams, JSON payloads),
// so dispatches and catch-up reads decode them like their own.

// loadChunk bounds the rows of one loading statement, to bound its memory.
const loadChunk = 100_000

// historySQL writes events from-to (inclusive) of a history labelled $3:
// every fourth one a UserRegistered (tags user:, username:), the others
// TicketSold spread over 1000 concerts (tags concert:, buyer:), each in a
// stream of its own at revision 1. Ids are ordered within a load like the
// store's UUIDv7; $4 keeps two loads into one database apart.
const historySQL = `WITH ev AS (
	INSERT INTO factos_events (id, stream, revision, type, version, tags, metadata, data)
	SELECT (lpad(to_hex($4::int), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
		CASE WHEN i % 4 = 0 THEN 'user-' ELSE 'buyer-' END || $3::text || '-' || i,
		1,
		CASE WHEN i % 4 = 0 THEN 'UserRegistered' ELSE 'TicketSold' END,
		1,
		CASE WHEN i % 4 = 0 THEN ARRAY['user:' || $3::text || '-' || i, 'username:' || $3::text || '-' || i]
			ELSE ARRAY['concert:' || $3::text || '-' || (i % 1000), 'buyer:' || $3::text || '-' || i] END,
		'{}',
		convert_to(CASE WHEN i % 4 = 0
			THEN json_build_object('user_id', $3::text || '-' || i, 'username', $3::text || '-' || i)
			ELSE json_build_object('concert_id', $3::text || '-' || (i % 1000), 'buyer_id', $3::text || '-' || i, 'seat', i / 1000 + 1)
			END::text, 'UTF8')
	FROM generate_series($1::bigint, $2::bigint) AS i
	ORDER BY i
	RETURNING position, type, tags
)
INSERT INTO factos_event_tags (tag, position, type)
SELECT t, ev.position, ev.type FROM ev, unnest(ev.tags) AS t`

// concertsSQL schedules concerts $3-from .. $3-to (inclusive) with capacity
// $4, as ScheduleConcert would: one ConcertScheduled each, tagged with the
// concert, at revision 1 of the concert's stream.
const concertsSQL = `WITH ev AS (
	INSERT INTO factos_events (id, stream, revision, type, version, tags, metadata, data)
	SELECT gen_random_uuid(), 'concert-' || $3::text || '-' || i, 1, 'ConcertScheduled', 1,
		ARRAY['concert:' || $3::text || '-' || i], '{}',
		convert_to(json_build_object('concert_id', $3::text || '-' || i, 'capacity', $4::bigint)::text, 'UTF8')
	FROM generate_series($1::bigint, $2::bigint) AS i
	ORDER BY i
	RETURNING position, type, tags
)
INSERT INTO factos_event_tags (tag, position, type)
SELECT t, ev.position, ev.type FROM ev, unnest(ev.tags) AS t`

// loadHistory stores n history events labelled label, then vacuums and
// analyzes both tables: the planner gets statistics of the loaded size, and
// the visibility map lets the tag index answer with index-only scans, as
// autovacuum would have arranged on a long-running store.
func loadHistory(ctx context.Context, pool *pgxpool.Pool, n int, label string) error {
	salt := rand.Int32()
	for from := 1; from <= n; from += loadChunk {
		to := min(from+loadChunk-1, n)
		if _, err := pool.Exec(ctx, historySQL, from, to, label, salt); err != nil {
			return fmt.Errorf("error loading history events %d-%d: %w", from, to, err)
		}
	}
	return vacuumAnalyze(ctx, pool)
}

func vacuumAnalyze(ctx context.Context, pool *pgxpool.Pool) error {
	for _, table := range []string{"factos_events", "factos_event_tags"} {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			return fmt.Errorf("error vacuuming %s: %w", table, err)
		}
	}
	return nil
}

// scheduleConcerts schedules the concerts label-from .. label-to.
func scheduleConcerts(ctx context.Context, pool *pgxpool.Pool, label string, from, to int, capacity int64) error {
	if to < from {
		return nil
	}
	if _, err := pool.Exec(ctx, concertsSQL, from, to, label, capacity); err != nil {
		return fmt.Errorf("error scheduling concerts %s-%d..%d: %w", label, from, to, err)
	}
	return nil
}
