// Package eventsql holds the event store's append statement, so that the
// store and the benchmark's insert ceiling (internal/bench) run the same
// SQL from one place: a ceiling measured with a copy would drift from what
// a dispatch runs.
package eventsql

// Insert appends events and their tag rows, and records the command id
// and its fingerprint, in one statement. The one-time filter takes the keys of $9 (exclusively
// where $10 says so) with try-locks before any row reaches the insert, that
// is before any position is drawn; if one is unavailable no row is inserted
// and the caller restarts the dispatch with those keys acquired up front.
// The ORDER BY makes positions follow revisions within the append.
//
// Parameters, one array element per event for $1 to $6: $1 ids (uuid[]),
// $2 types, $3 versions (int4[]), $4 tags joined by U+001F, $5 metadata
// (jsonb[]), $6 data (bytea[]); $7 the stream, $8 its head revision before
// the append; $9 the try-lock keys (int8[]) and $10 whether each is taken
// exclusively (bool[]); $11 the command id, or NULL, and $12 its
// fingerprint (the command's name and payload hashed, or NULL). It returns each
// event's position, revision and recorded_at, in position order.
//
// InsertCTEs is its WITH clause. Its CTE "appended" holds the events
// inserted (id, position, revision, recorded_at, tags, type); it is empty
// when a try-lock was unavailable.
const InsertCTEs = `WITH input AS (
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::jsonb[], $6::bytea[])
		WITH ORDINALITY AS i(id, type, version, tags, metadata, data, ord)
), appended AS (
	INSERT INTO factos_events (id, stream, revision, type, version, tags, metadata, data)
	SELECT i.id, $7, $8 + i.ord, i.type, i.version, string_to_array(i.tags, E'\x1f'), i.metadata, i.data
	FROM input i
	WHERE (SELECT coalesce(bool_and(CASE WHEN x THEN pg_try_advisory_xact_lock(k) ELSE pg_try_advisory_xact_lock_shared(k) END), true)
		FROM unnest($9::int8[], $10::bool[]) AS t(k, x))
	ORDER BY i.ord
	RETURNING id, position, revision, recorded_at, tags, type
), tg AS (
	INSERT INTO factos_event_tags (tag, position, type)
	SELECT t.tag, appended.position, appended.type FROM appended, unnest(appended.tags) AS t(tag)
), cmd AS (
	INSERT INTO factos_commands (id, stream, positions, fingerprint)
	SELECT $11, $7, array_agg(position ORDER BY position), $12 FROM appended
	WHERE $11::text IS NOT NULL HAVING count(*) > 0
)`

// Insert is the whole append statement: InsertCTEs, then InsertResult.
const Insert = InsertCTEs + InsertResult

// InsertResult ends Insert: the inserted events' positions, revisions and
// times, in position order. Data-modifying CTEs of the store's batch hooks
// (eventstore.Appending.Join) go between InsertCTEs and it, so that the
// hooks' rows are written by the same statement as the events.
const InsertResult = `
SELECT position, revision, recorded_at FROM appended ORDER BY position`

// InsertParams is the number of bind parameters of Insert: a hook's own
// parameters are numbered from InsertParams+1.
const InsertParams = 12
