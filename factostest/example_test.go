package factostest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
)

// printT stands in for a test's *testing.T in these examples: it prints
// what the kit reports. In a test, pass t itself.
type printT struct{ testing.TB }

func (printT) Helper()                           {}
func (printT) Context() context.Context          { return context.Background() }
func (printT) Errorf(format string, args ...any) { fmt.Printf("FAIL "+format+"\n", args...) }
func (printT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Test a command handler: given facts, when a command, then events or a
// rejection. A wrong expectation fails with a diff of the events as the
// store would hold them.
func Example() {
	var t printT // in a test: t *testing.T
	codec := tickets.NewCodec()
	buy := factostest.ForHandler(t, tickets.BuyTicketHandler(codec), nil)
	sale := buy.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 2}).
		Unrelated(tickets.ConcertScheduled{ConcertID: "c2", Capacity: 100})
	ada := tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}

	// Checks that hold report nothing.
	sale.When(ada).Then(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
	sale.Given(
		tickets.TicketSold{ConcertID: "c1", BuyerID: "bob", Seat: 1, Channel: tickets.SaleDirect},
		tickets.TicketSold{ConcertID: "c1", BuyerID: "cy", Seat: 2, Channel: tickets.SaleDirect},
	).When(ada).ThenRejected(tickets.ErrSoldOut)

	// This one expects the wrong seat.
	sale.Given(tickets.TicketSold{ConcertID: "c1", BuyerID: "bob", Seat: 1, Channel: tickets.SaleDirect}).
		When(ada).
		Then(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
	// Output:
	// FAIL factostest: when tickets.BuyTicket {"concert_id":"c1","buyer_id":"ada"}: decided events differ (-want +got):
	//     [0] TicketSold v2 tags [concert:c1 buyer:ada]
	//         {
	//           "buyer_id": "ada",
	//           "channel": "direct",
	//           "concert_id": "c1",
	//   -       "seat": 1
	//   +       "seat": 2
	//         }
}

// The handler's query must select every given fact and no unrelated one.
// This one forgets reservations, so a held seat is sold twice.
func ExampleForHandler_query() {
	var t printT // in a test: t *testing.T
	codec := tickets.NewCodec()
	h := tickets.BuyTicketHandler(codec)
	h.Query = func(c tickets.BuyTicket) eventstore.Query {
		return eventstore.NewQuery(eventstore.TypesAndTags(
			[]string{tickets.TypeConcertScheduled, tickets.TypeTicketSold}, tickets.ConcertTag(c.ConcertID)))
	}
	factostest.ForHandler(t, h, nil).
		Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 1},
			tickets.TicketReserved{ConcertID: "c1", BuyerID: "bob", ReservationID: "r1"}).
		When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
		ThenRejected(tickets.ErrSoldOut)
	// Output:
	// FAIL factostest: when tickets.BuyTicket {"concert_id":"c1","buyer_id":"ada"}: the query does not select exactly the given facts.
	//   query: (types=ConcertScheduled|TicketSold tags=concert:c1)
	//   missed: 1 given fact(s) the query does not select, so in production the decision never sees them (widen the query, or drop them from Given if the decision does not need them):
	//     given[1] TicketReserved v1 tags [concert:c1 buyer:bob reservation:r1] {"buyer_id":"bob","concert_id":"c1","reservation_id":"r1"}
	// FAIL factostest: when tickets.BuyTicket {"concert_id":"c1","buyer_id":"ada"}: want a rejection matching "sold out", but the decider decided 1 event(s):
	//     [0] TicketSold v2 tags [concert:c1 buyer:ada]
	//         {
	//           "buyer_id": "ada",
	//           "channel": "direct",
	//           "concert_id": "c1",
	//           "seat": 1
	//         }
}

// Test a reactor as it is registered: given a record, then these effects.
func ExampleForReactor() {
	var t printT // in a test: t *testing.T
	announce := factostest.ForReactor(t, tickets.AnnounceSalesReactor(tickets.NewCodec()))

	sold := announce.Given(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
	id := sold.Record().ID.String()
	sold.Then(eventstore.PlannedEffect{
		Kind:        tickets.EffectAnnounceTicketSale,
		Key:         "announce-sale:" + id,
		OrderingKey: tickets.BuyerTag("ada"),
		Args:        tickets.AnnounceTicketSale{ConcertID: "c1", BuyerID: "ada", Seat: 1, EventID: id},
	})
	fmt.Println("announced", id)

	// Its subscription never delivers a reservation.
	announce.Given(tickets.TicketReserved{ConcertID: "c1", BuyerID: "bob", ReservationID: "r1"}).Then()
	// Output:
	// announced 00000000-0000-7000-8000-000000000001
}

// Test a view: given records, then this read model. Payloads stored by an
// older release (GivenData) go through the codec's upcasters.
func ExampleForView() {
	var t printT // in a test: t *testing.T
	codec := tickets.NewCodec()
	q := tickets.SaleStateQuery("c1")
	sales := factostest.ForView(t, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Query: &q})

	sales.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 2}).
		GivenData(eventstore.EventData{ // a sale stored at version 1, before channels
			Type: tickets.TypeTicketSold, Version: 1, Tags: []string{"concert:c1", "buyer:ada"},
			Data: []byte(`{"concert_id":"c1","buyer_id":"ada","seat":1}`),
		}).
		Unrelated(tickets.ConcertScheduled{ConcertID: "c2", Capacity: 9}).
		Then(tickets.SaleState{
			Capacity: 2,
			Sold:     map[string]int{tickets.SaleDirect: 1},
			Buyers:   map[int]string{1: "ada"},
			Held:     map[string]string{},
		})
	fmt.Println("ok")
	// Output:
	// ok
}
