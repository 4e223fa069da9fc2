package reliability

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/reactors"
)

// What a dispatch reports is what it wrote, with connections killed at
// random, COMMIT in flight included, and no command id to fall back on:
// a success wrote its event, a plain failure nothing, and only a
// *StoreError with CommitUnknown may have written it or not. (With a
// command id a retry hides a wrong "plain" failure as a duplicate, which
// is why TestDispatchConnectionsKilledAtEveryPoint cannot see one.)
func TestOutcomeIsWhatWasWritten(t *testing.T) {
	t.Parallel()
	for _, withOutbox := range []bool{false, true} {
		t.Run(fmt.Sprint("outbox=", withOutbox), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clean, faulty, k := killedPools(t, 0.25, 16)
			codec := tickets.NewCodec()
			scfg := &eventstore.Config{MaxAttempts: 20}
			if withOutbox {
				reg := reactors.NewRegistry(nil)
				if err := tickets.RegisterReactions(reg, codec, clean); err != nil {
					t.Fatal(err)
				}
				ob, err := reg.Outbox(nil)
				if err != nil {
					t.Fatal(err)
				}
				scfg.BatchHooks = []eventstore.BatchHook{ob}
			}
			store, err := eventstore.New(faulty, scfg)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := eventstore.New(clean, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := eventstore.Dispatch(ctx, cs, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: "x", Capacity: 1_000_000}, nil); err != nil {
				t.Fatal(err)
			}
			type outcome struct {
				err     error
				unknown bool
			}
			out := make([]outcome, 400)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 12)
			for i := range out {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					_, err := eventstore.Dispatch(ctx, store, tickets.BuyTicketHandler(codec), tickets.BuyTicket{ConcertID: "x", BuyerID: fmt.Sprint("u", i)}, nil)
					var se *eventstore.StoreError
					out[i] = outcome{err, errors.As(err, &se) && se.CommitUnknown}
				})
			}
			wg.Wait()
			var written map[string]int
			rows, err := clean.Query(ctx, `SELECT convert_from(data, 'UTF8')::jsonb->>'buyer_id', count(*) FROM factos_events WHERE type = $1 GROUP BY 1`, tickets.TypeTicketSold)
			if err != nil {
				t.Fatal(err)
			}
			written = map[string]int{}
			for rows.Next() {
				var buyer string
				var n int
				if err := rows.Scan(&buyer, &n); err != nil {
					t.Fatal(err)
				}
				written[buyer] = n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			var ok, plain, unknown int
			for i, o := range out {
				n := written[fmt.Sprint("u", i)]
				switch {
				case o.err == nil:
					ok++
					if n != 1 {
						t.Errorf("u%d: success, and %d events written", i, n)
					}
				case o.unknown:
					unknown++
					if n > 1 {
						t.Errorf("u%d: CommitUnknown, and %d events written", i, n)
					}
				default:
					plain++
					if n != 0 {
						t.Errorf("u%d: a plain failure (%v), and %d events written", i, o.err, n)
					}
				}
			}
			t.Logf("%d committed, %d failed, %d unknown; %d backends killed", ok, plain, unknown, k.count.Load())
		})
	}
}
