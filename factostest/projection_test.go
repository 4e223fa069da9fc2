package factostest_test

import (
	"context"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
)

func salesOpts(store *eventstore.Store) *factostest.ProjectionOpts {
	q := tickets.SaleStateQuery("c1")
	return &factostest.ProjectionOpts{Query: &q, Store: store}
}

func TestProjectionPasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB, store *eventstore.Store)
	}{
		{"view", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).
				Given(scheduled("c1", 3), sold("ada", 1), reserved("bob", "r1")).
				Unrelated(scheduled("c2", 9), tickets.TicketSold{ConcertID: "c2", BuyerID: "cy", Seat: 1, Channel: tickets.SaleDirect}).
				Then(tickets.SaleState{Capacity: 3, Sold: map[string]int{tickets.SaleDirect: 1}, Buyers: map[int]string{1: "ada"}, Held: map[string]string{"r1": "bob"}})
		}},
		{"no facts", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).
				Then(tickets.SaleState{Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}})
		}},
		{"every event", func(tb testing.TB, store *eventstore.Store) {
			count := eventstore.View[tickets.Event, int]{Evolve: func(n int, _ eventstore.Record[tickets.Event]) int { return n + 1 }}
			factostest.ForView(tb, codec, count, &factostest.ProjectionOpts{Store: store}).Given(scheduled("c1", 1), scheduled("c2", 1)).Then(2)
		}},
		{"projection error", func(tb testing.TB, store *eventstore.Store) {
			failing := func(context.Context, []eventstore.Record[tickets.Event]) (int, error) { return 0, errReactor }
			factostest.ForProjection(tb, codec, failing, &factostest.ProjectionOpts{Store: store}).Given(scheduled("c1", 1)).ThenError(errReactor)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, store *eventstore.Store) {
				record(t, func(tb testing.TB) { tt.run(tb, store) }).passes(t)
			})
		})
	}
}

// Records are what the view receives in memory, with the kit's ids and
// times, for views that keep them.
func TestProjectionRecords(t *testing.T) {
	t.Parallel()
	type last struct {
		Position eventstore.Position
		At       time.Time
	}
	view := eventstore.View[tickets.Event, last]{Evolve: func(_ last, r eventstore.Record[tickets.Event]) last {
		return last{Position: r.Position, At: r.RecordedAt}
	}}
	record(t, func(tb testing.TB) {
		p := factostest.ForView(tb, codec, view, salesOpts(nil)).Given(scheduled("c1", 1)).Unrelated(scheduled("c2", 1)).Given(sold("ada", 1))
		recs := p.Records()
		if len(recs) != 2 || recs[0].Position != 1 || recs[1].Position != 3 || recs[1].Stream != factostest.GivenStream ||
			!recs[1].RecordedAt.Equal(factostest.Epoch.Add(2*time.Second)) || recs[1].ID.String() != "00000000-0000-7000-8000-000000000003" {
			tb.Errorf("records = %+v", recs)
		}
		// A time in another location is the same instant: views compare with Equal methods.
		p.Then(last{Position: 3, At: factostest.Epoch.Add(2 * time.Second).In(time.FixedZone("X", 3600))})
	}).passes(t)
}

type hidden struct {
	Visible int
	secret  int
}

func TestProjectionFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB, store *eventstore.Store)
		want [][]string
	}{
		{"other view", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).
				Given(scheduled("c1", 3), sold("ada", 1)).
				Then(tickets.SaleState{Capacity: 3, Sold: map[string]int{tickets.SaleDirect: 1}, Buyers: map[int]string{1: "bob"}, Held: map[string]string{}})
		}, [][]string{{"factostest: view tickets.SaleState: the view differs (-want +got):\n",
			"\n      \"buyers\": {\n  -     \"1\": \"bob\"\n  +     \"1\": \"ada\"\n      },\n"}}},
		{"query too wide", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Store: store}).
				Given(scheduled("c1", 3)).Unrelated(scheduled("c2", 9)).
				Then(tickets.SaleState{Capacity: 3, Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}})
		}, [][]string{
			{"query: all", "selected needlessly: 1 fact(s) declared Unrelated that the query selects, so the view reads and folds them",
				`unrelated[0] ConcertScheduled v1 tags [concert:c2] {"capacity":9,"concert_id":"c2"}`},
			{"the view differs", "-   \"capacity\": 3,\n  +   \"capacity\": 9,"},
		}},
		{"query misses a fact", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).
				Given(scheduled("c1", 3), tickets.PaymentReceived{ReservationID: "r1", AmountCents: 1}).
				Then(tickets.SaleState{Capacity: 3, Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}})
		}, [][]string{{"missed: 1 given fact(s) the query does not select, so in production the view never sees them", "given[1] PaymentReceived v1"}}},
		{"impure", func(tb testing.TB, store *eventstore.Store) {
			shared := tickets.SaleState{Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}}
			impure := tickets.SaleStateView()
			impure.Initial = func() tickets.SaleState { return shared }
			factostest.ForView(tb, codec, impure, salesOpts(store)).Given(sold("ada", 1)).
				Then(tickets.SaleState{Sold: map[string]int{tickets.SaleDirect: 1}, Buyers: map[int]string{1: "ada"}, Held: map[string]string{}})
		}, [][]string{{"the projection is not pure: projecting the same records again built another view (-first +again):",
			"  -     \"direct\": 1\n  +     \"direct\": 2\n", "Initial must return fresh maps"}}},
		{"difference JSON does not show", func(tb testing.TB, store *eventstore.Store) {
			view := eventstore.View[tickets.Event, hidden]{Evolve: func(h hidden, _ eventstore.Record[tickets.Event]) hidden { return hidden{Visible: 1, secret: 2} }}
			factostest.ForView(tb, codec, view, &factostest.ProjectionOpts{Store: store}).Given(scheduled("c1", 1)).Then(hidden{Visible: 1})
		}, [][]string{{"the view differs (-want +got):\n  - factostest_test.hidden{Visible:1, secret:0}\n  + factostest_test.hidden{Visible:1, secret:2}"}}},
		{"error instead of a view", func(tb testing.TB, store *eventstore.Store) {
			failing := func(context.Context, []eventstore.Record[tickets.Event]) (int, error) { return 0, errReactor }
			factostest.ForProjection(tb, codec, failing, &factostest.ProjectionOpts{Store: store}).Then(0)
		}, [][]string{{"the projection failed: reactor failed; want the view:\n    0"}}},
		{"view instead of an error", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).ThenError(errReactor)
		}, [][]string{{`want an error matching "reactor failed", but the projection built the view:`, `"capacity": 0`}}},
		{"another error", func(tb testing.TB, store *eventstore.Store) {
			factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).
				GivenData(eventstore.EventData{Type: tickets.TypeTicketSold, Version: 7, Tags: []string{"concert:c1"}, Data: []byte(`{}`)}).
				ThenError(errReactor)
		}, [][]string{{`the projection failed with "error decoding event \"TicketSold\" (version 7) at position 1`, `want an error matching "reactor failed"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, store *eventstore.Store) {
				record(t, func(tb testing.TB) { tt.run(tb, store) }).fails(t, tt.want...)
			})
		})
	}
}

func TestProjectionStops(t *testing.T) {
	t.Parallel()
	r := record(t, func(tb testing.TB) {
		factostest.ForView(tb, codec, eventstore.View[tickets.Event, int]{}, nil)
	})
	r.stops(t, "factostest: ForView: the view's Evolve is nil")

	r = record(t, func(tb testing.TB) {
		factostest.ForView(tb, codec, tickets.SaleStateView(), nil).ThenError(nil)
	})
	r.stops(t, "ThenError(nil)")

	store := newStore(t)
	r = record(t, func(tb testing.TB) {
		v := factostest.ForView(tb, codec, tickets.SaleStateView(), salesOpts(store)).Given(scheduled("c1", 1))
		v.Then(tickets.SaleState{Capacity: 1, Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}})
		v.Then(tickets.SaleState{Capacity: 1, Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}})
	})
	r.stops(t, "the store already holds 1 events the query")
	if len(r.errors) != 0 {
		t.Errorf("the first scenario failed: %q", r.errors)
	}
}
