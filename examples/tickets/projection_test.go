package tickets_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/projections"
)

// The concert_sales view, built while buyers race for seats of three
// concerts (some buying several), equals the fold of the log; and again
// after a rebuild.
func TestConcertSalesEqualsTheFoldOfTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec := tickets.NewCodec()
	reg := projections.NewRegistry()
	if err := tickets.RegisterProjections(reg, codec); err != nil {
		t.Fatal(err)
	}
	client, err := projections.New(store, reg, &projections.Config{LeaseInterval: 100 * time.Millisecond, PollInterval: 5 * time.Millisecond, BatchSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(ctx) })

	for c := range 3 {
		if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: fmt.Sprint("c", c), Capacity: 150}, nil); err != nil {
			t.Fatal(err)
		}
	}
	buy := tickets.BuyTicketHandler(codec)
	var next, sold atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= 600 {
					return
				}
				res, err := eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: fmt.Sprint("c", i%3), BuyerID: fmt.Sprint("b", i%97)}, nil)
				switch {
				case errors.Is(err, tickets.ErrSoldOut):
				case err != nil:
					t.Error(err)
					return
				default:
					sold.Add(1)
					// Read your own write.
					if err := client.WaitFor(ctx, tickets.ProjectionConcertSales, res.Records[0].Position); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if sold.Load() != 450 {
		t.Fatalf("%d sold, want 450", sold.Load())
	}
	check := func() {
		t.Helper()
		st, err := client.StatusOf(ctx, tickets.ProjectionConcertSales)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.WaitFor(ctx, tickets.ProjectionConcertSales, st.Head); err != nil {
			t.Fatal(err)
		}
		view, err := tickets.ReadConcertSales(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tickets.ConcertSalesFromLog(ctx, store, codec)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(view, want) {
			t.Fatalf("view differs from the fold of the log:\nview %v\nfold %v", view, want)
		}
		if c := view["c1"]; c == nil || c.SeatsSold != 150 || c.Capacity != 150 || len(c.Buyers) != 97 {
			t.Fatalf("c1: %+v", c)
		}
	}
	check()
	if _, err := client.Rebuild(ctx, tickets.ProjectionConcertSales, nil); err != nil {
		t.Fatal(err)
	}
	check()
	if err := client.Reset(ctx, tickets.ProjectionConcertSales, &projections.ResetOpts{From: 3}); err == nil {
		t.Fatal("reset from 3 accepted")
	}
	check()
}
