package reliability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// ledger records what every command's client finally learned.
type ledger struct {
	mu       sync.Mutex
	accepted map[string]bool // command id -> accepted
	rejected map[string]bool
	failed   map[string]error // gave up: no definitive answer
	retries  int
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]bool{}, rejected: map[string]bool{}, failed: map[string]error{}}
}

// dispatchUntilDefinite sends a command until the store gives a definitive
// answer: committed (or already committed: a duplicate) or rejected. A
// store failure or conflict is retried with the same command id, which is
// what makes retrying safe when a commit's outcome is unknown.
func (l *ledger) dispatchUntilDefinite(ctx context.Context, id string, dispatch func(ctx context.Context, id string) error) {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		err := dispatch(ctx, id)
		l.mu.Lock()
		switch {
		case err == nil:
			l.accepted[id] = true
			l.mu.Unlock()
			return
		case errors.Is(err, eventstore.ErrRejected):
			l.rejected[id] = true
			l.mu.Unlock()
			return
		case errors.Is(err, eventstore.ErrInvalidInput), errors.Is(err, eventstore.ErrStrategyMismatch), time.Now().After(deadline):
			// Definite failures, or a fault that outlasted the deadline.
			l.failed[id] = err
			l.mu.Unlock()
			return
		}
		l.retries++
		l.mu.Unlock()
		time.Sleep(time.Duration(min(attempt+1, 50)) * 10 * time.Millisecond) // back off while the fault lasts
	}
}

// checkSale checks the invariants of a ticket sale after faults:
//   - every accepted command's events are stored exactly once, and its
//     command id is recorded;
//   - no rejected command stored anything;
//   - the concert is not oversold and its seats are numbered without gaps.
//
// commandID maps a ledger id to the command id the store saw (nil: the
// same).
func checkSale(t *testing.T, ctx context.Context, pool *pgxpool.Pool, l *ledger, concert string, capacity int, commandID func(string) string) int {
	t.Helper()
	if commandID == nil {
		commandID = func(id string) string { return id }
	}
	accepted, rejected := map[string]bool{}, map[string]bool{}
	for id := range l.accepted {
		accepted[commandID(id)] = true
	}
	for id := range l.rejected {
		rejected[commandID(id)] = true
	}
	for id, err := range l.failed {
		t.Errorf("command %s got no definitive answer: %v", id, err)
	}
	rows, err := pool.Query(ctx, `SELECT c.id, cardinality(c.positions),
			(SELECT count(*) FROM factos_events e WHERE e.position = ANY(c.positions) AND e.type = 'TicketSold')
		FROM factos_commands c WHERE c.id LIKE $1 || '/%'`, concert)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		var n, sold int
		if err := rows.Scan(&id, &n, &sold); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
		if rejected[id] {
			t.Errorf("rejected command %s stored %d events", id, n)
		}
		if accepted[id] && (n != 1 || sold != 1) {
			t.Errorf("accepted command %s stored %d events (%d tickets), want exactly 1", id, n, sold)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for id := range accepted {
		if !stored[id] {
			t.Errorf("accepted command %s left no record", id)
		}
	}
	var seats []int
	srows, err := pool.Query(ctx, `SELECT (convert_from(data, 'UTF8')::jsonb->>'seat')::int FROM factos_events
		WHERE type = 'TicketSold' AND $1 = ANY(tags) ORDER BY position`, tickets.ConcertTag(concert))
	if err != nil {
		t.Fatal(err)
	}
	for srows.Next() {
		var s int
		if err := srows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seats = append(seats, s)
	}
	want := make([]int, len(l.accepted))
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(seats, want) {
		t.Errorf("seats %v, want 1..%d (one per accepted command)", seats, len(l.accepted))
	}
	if len(seats) > capacity {
		t.Errorf("oversold: %d > %d", len(seats), capacity)
	}
	return len(seats)
}

// checkReactions checks that every committed sale got its reaction and its
// announcement exactly once.
func checkReactions(t *testing.T, ctx context.Context, pool *pgxpool.Pool, concert string, sold int) {
	t.Helper()
	var reactions, announcements, effectJobs, distinctKeys int
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM factos_reactions r JOIN factos_events e USING (position)
			WHERE r.reactor = $2 AND e.type = 'TicketSold' AND $1 = ANY(e.tags)),
		(SELECT count(*) FROM ticket_announcements WHERE concert_id = $3),
		(SELECT count(*) FROM river_job WHERE kind = 'factos.effect.announce_ticket_sale' AND args->'args'->>'concert_id' = $3),
		(SELECT count(DISTINCT args->>'key') FROM river_job WHERE kind = 'factos.effect.announce_ticket_sale' AND args->'args'->>'concert_id' = $3)`,
		tickets.ConcertTag(concert), tickets.ReactorAnnounceSales, concert).Scan(&reactions, &announcements, &effectJobs, &distinctKeys)
	if err != nil {
		t.Fatal(err)
	}
	if reactions != sold || announcements != sold || effectJobs != sold || distinctKeys != sold {
		t.Errorf("%d sold: %d reactions, %d announcements, %d effect jobs with %d keys; want each exactly once",
			sold, reactions, announcements, effectJobs, distinctKeys)
	}
}

// catchUp reads the whole log with ReadAfter until stop is closed and the
// log is exhausted, and reports the positions it saw, in order.
func catchUp(ctx context.Context, store *eventstore.Store, stop <-chan struct{}) <-chan []eventstore.Position {
	out := make(chan []eventstore.Position, 1)
	go func() {
		var seen []eventstore.Position
		var next eventstore.Position
		for {
			finished := false
			select {
			case <-stop:
				finished = true
			default:
			}
			page, err := store.ReadAfter(ctx, next, &eventstore.ReadAfterOpts{Limit: 50})
			if err != nil {
				time.Sleep(20 * time.Millisecond) // the reader's own connection may be the one killed
				continue
			}
			for _, r := range page.Records {
				seen = append(seen, r.Position)
			}
			next = page.Next
			if finished && len(page.Records) < 50 {
				out <- seen
				return
			}
		}
	}()
	return out
}

// checkCatchUp checks that the reader saw every stored event once, in order.
func checkCatchUp(t *testing.T, ctx context.Context, pool *pgxpool.Pool, seen []eventstore.Position) {
	t.Helper()
	var all []int64
	rows, err := pool.Query(ctx, `SELECT position FROM factos_events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	got := make([]int64, len(seen))
	for i, p := range seen {
		got[i] = int64(p)
	}
	if !slices.Equal(got, all) {
		t.Errorf("catch-up reader saw %d events, the log holds %d (first difference at %s)", len(got), len(all), firstDiff(got, all))
	}
}

func firstDiff(a, b []int64) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: %d vs %d", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("index %d", min(len(a), len(b)))
}
