package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/factos-go/factos/eventstore"
)

// States of a projection.
const (
	// StateNew: no runner has started the projection yet.
	StateNew = "new"
	// StateOK: the last attempt succeeded.
	StateOK = "ok"
	// StateStuck: the last attempts failed; the runner retries with
	// backoff and does not move on until one succeeds or an operator skips
	// the failing position.
	StateStuck = "stuck"
)

// Status is a projection's state as the database records it.
type Status struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Position is the checkpoint: every matching event at or below it has
	// been applied or skipped.
	Position eventstore.Position `json:"position"`
	// Head is the log's head (the last position drawn) when read.
	Head eventstore.Position `json:"head"`
	// LagEvents is Head - Position: log positions not yet passed, an upper
	// bound on the events still to apply.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is the age of the oldest committed event after the
	// checkpoint, 0 when there is none.
	LagSeconds float64 `json:"lag_seconds"`
	// Applied counts the events applied since the last reset.
	Applied int64 `json:"applied"`
	// Running is set while a process holds the projection's lease.
	Running bool `json:"running"`
	// Owner is the process that last took the lease (Config.Owner).
	Owner      string    `json:"owner,omitempty"`
	OwnerSince time.Time `json:"owner_since,omitzero"`

	// While stuck: the position it fails at (0 when reading the log
	// fails), since when, after how many attempts, the last error and when
	// the next attempt is due.
	FailingPosition eventstore.Position `json:"failing_position,omitempty"`
	FailingSince    time.Time           `json:"failing_since,omitzero"`
	Attempts        int                 `json:"attempts,omitempty"`
	LastError       string              `json:"last_error,omitempty"`
	NextAttempt     time.Time           `json:"next_attempt,omitzero"`

	// Skipped counts the positions an operator skipped (see Skips).
	Skipped int64 `json:"skipped"`
	// LastReset is the last reset or rebuild, if any.
	LastReset *ResetRecord `json:"last_reset,omitempty"`
	UpdatedAt time.Time    `json:"updated_at,omitzero"`
}

// ResetRecord is a reset as recorded.
type ResetRecord struct {
	At     time.Time           `json:"at"`
	From   eventstore.Position `json:"from"`
	By     string              `json:"by"`
	Reason string              `json:"reason,omitempty"`
}

const statusSQL = `WITH head AS (
	SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS head FROM factos_events_position_seq
), locks AS (
	SELECT objid::int8 AS key FROM pg_locks
	WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::int8 = $3
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT n.name, p.name IS NOT NULL, coalesce(p.position, 0), coalesce(p.applied, 0), coalesce(p.attempts, 0),
	p.failing_position, p.failing_since, p.last_error, p.next_attempt_at, p.owner, p.owner_since,
	p.reset_at, p.reset_from, p.reset_by, p.reset_reason, p.updated_at,
	(SELECT count(*) FROM factos_projection_skips s WHERE s.projection = n.name),
	EXISTS (SELECT 1 FROM locks WHERE locks.key = n.key),
	h.head,
	coalesce((SELECT extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 FROM factos_events e
		WHERE e.position > coalesce(p.position, 0) ORDER BY e.position LIMIT 1), 0)
FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS n(name, key, ord)
LEFT JOIN factos_projections p ON p.name = n.name
CROSS JOIN head h
ORDER BY n.ord`

// Status returns the state of every registered projection, in
// registration order.
func (c *Client) Status(ctx context.Context) ([]Status, error) {
	return c.status(ctx, c.reg.order)
}

// StatusOf returns one projection's state.
func (c *Client) StatusOf(ctx context.Context, name string) (*Status, error) {
	if _, err := c.reg.lookup(name); err != nil {
		return nil, err
	}
	st, err := c.status(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	return &st[0], nil
}

func (c *Client) status(ctx context.Context, names []string) ([]Status, error) {
	keys := make([]int64, len(names))
	for i, n := range names {
		keys[i] = int64(c.reg.entries[n].key)
	}
	rows, err := c.pool.Query(ctx, statusSQL, names, keys, int64(leaseClass))
	if err != nil {
		return nil, fmt.Errorf("projections: error reading status: %w", err)
	}
	defer rows.Close()
	out := make([]Status, 0, len(names))
	for rows.Next() {
		var s Status
		var exists bool
		var pos, head int64
		var failing, resetFrom *int64
		var failingSince, nextAttempt, ownerSince, resetAt, updated *time.Time
		var lastErr, owner, resetBy, resetReason *string
		if err := rows.Scan(&s.Name, &exists, &pos, &s.Applied, &s.Attempts, &failing, &failingSince, &lastErr, &nextAttempt,
			&owner, &ownerSince, &resetAt, &resetFrom, &resetBy, &resetReason, &updated, &s.Skipped, &s.Running, &head, &s.LagSeconds); err != nil {
			return nil, fmt.Errorf("projections: error reading status: %w", err)
		}
		s.Position, s.Head = eventstore.Position(pos), eventstore.Position(head)
		s.LagEvents = max(head-pos, 0)
		s.Owner, s.LastError = deref(owner), deref(lastErr)
		s.OwnerSince, s.FailingSince, s.NextAttempt, s.UpdatedAt = deref(ownerSince), deref(failingSince), deref(nextAttempt), deref(updated)
		s.FailingPosition = eventstore.Position(deref(failing))
		if resetAt != nil {
			s.LastReset = &ResetRecord{At: *resetAt, From: eventstore.Position(deref(resetFrom)), By: deref(resetBy), Reason: deref(resetReason)}
		}
		switch {
		case !exists:
			s.State = StateNew
		case s.Attempts > 0:
			s.State = StateStuck
		default:
			s.State = StateOK
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projections: error reading status: %w", err)
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
