package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/eventsql"
)

// The commands of the scenarios, all from the tickets example domain.

// name is unique per phase, client and command in a database.
func name(prefix string, client, seq int) string {
	return fmt.Sprintf("%s-%d-%d", prefix, client, seq)
}

// disjoint registers a fresh username: a context no other command shares.
func disjoint(t *target) command {
	h := tickets.RegisterUserHandler(t.codec)
	return func(ctx context.Context, client, seq int, prefix string) (string, error) {
		id := name(prefix, client, seq)
		_, err := eventstore.Dispatch(ctx, t.store, h, tickets.RegisterUser{UserID: id, Username: id}, nil)
		return "disjoint", err
	}
}

// stream schedules a new concert: stream-revision dispatch on a stream of
// its own.
func stream(t *target) command {
	h := tickets.ScheduleConcertHandler(t.codec)
	return func(ctx context.Context, client, seq int, prefix string) (string, error) {
		_, err := eventstore.Dispatch(ctx, t.store, h, tickets.ScheduleConcert{ConcertID: "s-" + name(prefix, client, seq), Capacity: 1}, nil)
		return "stream", err
	}
}

// ceiling inserts the event a disjoint command decides, with the store's
// statement (eventsql.Insert, which a dispatch runs) and arguments shaped
// as the store shapes them, but no lock, no read and no check. With inTx it runs inside BEGIN/COMMIT like a dispatch.
func ceiling(t *target, inTx bool) command {
	return func(ctx context.Context, client, seq int, prefix string) (string, error) {
		id := name(prefix, client, seq)
		ev, err := t.codec.Encode(tickets.UserRegistered{UserID: id, Username: id})
		if err != nil {
			return "", err
		}
		eid, err := uuid.NewV7()
		if err != nil {
			return "", err
		}
		args := []any{
			[][16]byte{eid}, []string{ev.Type}, []int32{int32(ev.Version)},
			[]string{strings.Join(ev.Tags, "\x1f")}, []string{"{}"}, [][]byte{ev.Data},
			tickets.UserStream(id), int64(0), []int64(nil), []bool(nil), (*string)(nil), []byte(nil),
		}
		if !inTx {
			return "", insertRows(ctx, t.pool.Query, args)
		}
		tx, err := t.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err != nil {
			return "", err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		if err := insertRows(ctx, tx.Query, args); err != nil {
			return "", err
		}
		return "", tx.Commit(ctx)
	}
}

func insertRows(ctx context.Context, query func(context.Context, string, ...any) (pgx.Rows, error), args []any) error {
	rows, err := query(ctx, eventsql.Insert, args...)
	if err != nil {
		return err
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("ceiling insert returned %d rows, want 1", n)
	}
	return nil
}

// hot is the hot context of one database: every buyer buys a ticket for
// the current concert. After epoch sales every buyer moves on to the next
// concert, so the context the decider reads (the concert's schedule and
// every ticket sold for it) stays between 1 and epoch+1 events from the
// first cell to the last: without that, the strategy that sold the most
// would read the longest context in its later cells.
type hot struct {
	t       *target
	handler eventstore.Handler[tickets.BuyTicket, tickets.Event, tickets.Sale]
	epoch   int64
	maxRate int
	sold    atomic.Int64
	// scheduled concerts hot-0 .. hot-(scheduled-1) exist. Only prepare
	// touches it, between phases.
	scheduled int
}

// hotCapacity is so large that no concert sells out in a run.
const hotCapacity = 1_000_000_000

func newHot(t *target, cfg *Config) *hot {
	return &hot{t: t, handler: tickets.BuyTicketHandler(t.codec), epoch: int64(cfg.HotEpoch), maxRate: cfg.MaxRate}
}

// prepare schedules the concerts a phase of length span can reach at
// maxRate commands a second.
func (h *hot) prepare(ctx context.Context, span time.Duration) error {
	need := int(h.sold.Load()/h.epoch) + int(math.Ceil(float64(h.maxRate)*span.Seconds()/float64(h.epoch))) + 2
	if need <= h.scheduled {
		return nil
	}
	if err := scheduleConcerts(ctx, h.t.pool, "hot", h.scheduled, need-1, hotCapacity); err != nil {
		return err
	}
	h.scheduled = need
	return nil
}

func (h *hot) buy(ctx context.Context, client, seq int, prefix string) (string, error) {
	concert := fmt.Sprintf("hot-%d", h.sold.Load()/h.epoch)
	_, err := eventstore.Dispatch(ctx, h.t.store, h.handler, tickets.BuyTicket{ConcertID: concert, BuyerID: name(prefix, client, seq)}, nil)
	if err == nil {
		h.sold.Add(1)
	}
	return "hot", err
}

// mix sends percent of the commands to the hot context and the rest to
// disjoint ones. The choice is a fixed function of client and sequence,
// staggered so that clients do not go hot in step.
func mix(t *target, h *hot, percent int) command {
	dis := disjoint(t)
	return func(ctx context.Context, client, seq int, prefix string) (string, error) {
		if (seq*7919+client*104729)%100 < percent {
			return h.buy(ctx, client, seq, prefix)
		}
		return dis(ctx, client, seq, prefix)
	}
}
