package eventstore

import (
	"fmt"
	"strings"

	"github.com/factos-go/factos/internal/eventsql"
)

// The SQL of the store. Every value is a bind parameter; only the shape of
// a query (how many items, which kinds) changes the statement text, so the
// number of distinct prepared statements stays small.

const recordColumns = `e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at`

// lockSQL takes advisory locks in array order, each shared or exclusive, in
// one statement. It waits for each in turn.
const lockSQL = `SELECT CASE WHEN x THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END
FROM unnest($1::int8[], $2::bool[]) AS t(k, x)`

const lockTableSQL = `LOCK TABLE factos_events IN EXCLUSIVE MODE`

const streamHeadSQL = `SELECT coalesce(max(revision), 0) FROM factos_events WHERE stream = $1`

const commandSQL = `SELECT positions, stream, fingerprint FROM factos_commands WHERE id = $1`

const streamReadSQL = `SELECT ` + recordColumns + ` FROM factos_events e WHERE e.stream = $1 AND e.revision > $2 ORDER BY e.revision`

const positionsReadSQL = `SELECT ` + recordColumns + ` FROM factos_events e WHERE e.position = ANY($1::int8[]) ORDER BY e.position`

// sequenceSQL reads the highest position drawn so far. Before its first use
// a sequence reports last_value 1 with is_called false: no position has
// been drawn, and the high-water mark is 0.
const sequenceSQL = `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM factos_events_position_seq`

// barrierSQL takes a catch-up read's keys, in array order, unless no
// position above $3 has been drawn (then there is nothing new to wait
// for). It returns how many keys it took. It waits for the writers that
// hold them, and writers that ask for them meanwhile queue behind it: the
// reads fall back to it only after tryBarrierSQL failed barrierTries
// times.
const barrierSQL = `SELECT count(*) FROM (
	SELECT CASE WHEN x THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END
	` + barrierKeysSQL + `
) AS locked`

// barrierKeysSQL is the rows of barrierSQL and tryBarrierSQL: the keys
// ($1) and whether each is exclusive ($2), none unless a position above
// $3 has been drawn.
const barrierKeysSQL = `FROM unnest($1::int8[], $2::bool[]) AS t(k, x)
	WHERE (` + sequenceSQL + `) > $3`

// tryBarrierSQL is barrierSQL with try-locks: it never waits, so it never
// makes a writer queue behind it. It returns how many keys it tried and
// whether it got them all; the keys it got are released at COMMIT either
// way.
const tryBarrierSQL = `SELECT count(*), coalesce(bool_and(got), true) FROM (
	SELECT CASE WHEN x THEN pg_try_advisory_xact_lock(k) ELSE pg_try_advisory_xact_lock_shared(k) END AS got
	` + barrierKeysSQL + `
) AS tried`

// allSharedSQL takes the all key shared: every writer does, just before it
// inserts.
const allSharedSQL = `SELECT pg_advisory_xact_lock_shared($1)`

// settingSQL records a setting on first use and returns the recorded value.
// When another session records it concurrently, the statement waits for it
// and then returns no row (its snapshot predates that commit): run it again.
const settingSQL = `WITH ins AS (
	INSERT INTO factos_settings (name, value) VALUES ($1, $2)
	ON CONFLICT (name) DO NOTHING
	RETURNING value
)
SELECT value FROM ins UNION ALL SELECT value FROM factos_settings WHERE name = $1`

const readSettingSQL = `SELECT value FROM factos_settings WHERE name = $1`

const writeSettingSQL = `INSERT INTO factos_settings (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = clock_timestamp()`

// insertSQL appends events and their tag rows, and records the command
// id and its fingerprint: see eventsql.Insert, which the benchmark's insert ceiling runs too.
const insertSQL = eventsql.Insert

// emptyCommandSQL records a command whose decision produced no events, so
// that a retry answers "already done, nothing appended".
const emptyCommandSQL = `INSERT INTO factos_commands (id, stream, positions, fingerprint) VALUES ($1, $2, '{}', $3)`

// args collects bind parameters and names them $1, $2, ...
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// matchSQL returns a statement selecting the positions of events that match
// q (normalized, not empty) with a position greater than after, in order,
// at most limit of them (limit <= 0: no limit). Each item is answered from
// its own index: types-only items from (type, position) on the event table,
// tag items from (tag, position) on the tag table, one tag driving the scan
// and the others probed in the same index (see below). With a limit every branch is cut to
// the limit first, so a catch-up read does not materialize every match.
func matchSQL(q Query, after string, limit string, a *args) string {
	if q.All {
		return "SELECT position FROM factos_events WHERE position > " + after + " ORDER BY position" + limitClause(limit)
	}
	branches := make([]string, 0, len(q.Items))
	for _, it := range q.Items {
		var b strings.Builder
		if len(it.Tags) == 0 {
			fmt.Fprintf(&b, "SELECT position FROM factos_events WHERE type = ANY(%s::text[]) AND position > %s", a.add(it.Types), after)
		} else {
			fmt.Fprintf(&b, "SELECT t0.position FROM factos_event_tags t0 WHERE t0.tag = %s AND t0.position > %s", a.add(it.Tags[0]), after)
			if len(it.Types) > 0 {
				fmt.Fprintf(&b, " AND t0.type = ANY(%s::text[])", a.add(it.Types))
			}
			switch rest := it.Tags[1:]; {
			case len(rest) == 1:
				fmt.Fprintf(&b, " AND EXISTS (SELECT 1 FROM factos_event_tags t WHERE t.tag = %s AND t.position = t0.position)", a.add(rest[0]))
			case len(rest) > 1:
				// One counted probe rather than an EXISTS per tag: the
				// planner pulls EXISTS clauses up into joins, and past a
				// dozen relations it searches join orders genetically
				// (GEQO): 125 ms to plan one item of 32 tags, seconds for
				// a query of many. An event's tags are distinct, so the
				// count is the number of the item's other tags it holds.
				fmt.Fprintf(&b, " AND (SELECT count(*) FROM factos_event_tags t WHERE t.position = t0.position AND t.tag = ANY(%s::text[])) = %d",
					a.add(rest), len(rest))
			}
		}
		if limit != "" {
			b.WriteString(" ORDER BY 1" + limitClause(limit))
		}
		branches = append(branches, "("+b.String()+")")
	}
	if len(branches) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(branches[0], "("), ")")
	}
	return "SELECT position FROM (" + strings.Join(branches, " UNION ") + ") m ORDER BY position" + limitClause(limit)
}

func limitClause(limit string) string {
	if limit == "" {
		return ""
	}
	return " LIMIT " + limit
}

// readSQL selects the records matching q after a position. Every event
// matches q.All: one range scan of the primary key reads them. Other
// queries select the positions from their items' indexes and then the
// rows; the outer bound repeats the inner one for the plan PostgreSQL
// caches for the prepared statement: not knowing the positions, that
// generic plan may merge-join the primary key with the matches, and
// without the bound it walked the key from the log's first event on every
// page (a catch-up quadratic in the log's length).
func readSQL(q Query, after Position, limit int, a *args) string {
	afterP := a.add(int64(after))
	limitP := ""
	if limit > 0 {
		limitP = a.add(limit)
	}
	sql := "SELECT " + recordColumns + " FROM factos_events e WHERE e.position > " + afterP
	if !q.All {
		sql += " AND e.position IN (" + matchSQL(q, afterP, limitP, a) + ")"
	}
	return sql + " ORDER BY e.position" + limitClause(limitP)
}

// existsSQL tells whether any event matching q lies after a position.
func existsSQL(q Query, after Position, a *args) string {
	return "SELECT EXISTS (" + matchSQL(q, a.add(int64(after)), "", a) + ")"
}
