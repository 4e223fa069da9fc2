package tickets_test

import (
	"encoding/json"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
	"github.com/factos-go/factos/temporaleffects"
)

func TestAnnounceSales(t *testing.T) {
	t.Parallel()
	announce := factostest.ForReactor(t, tickets.AnnounceSalesReactor(codec))

	// Every sale is announced once (the key derives from the event id),
	// in order per buyer (the ordering key is the buyer's tag).
	for _, sale := range []tickets.Event{sold("ada", 1), confirmed("bob", 2, "r1")} {
		rx := announce.Given(sale)
		id := rx.Record().ID.String()
		s := sale.(tickets.TicketSold)
		rx.Then(eventstore.PlannedEffect{
			Kind:        tickets.EffectAnnounceTicketSale,
			Key:         "announce-sale:" + id,
			OrderingKey: tickets.BuyerTag(s.BuyerID),
			Args:        tickets.AnnounceTicketSale{ConcertID: "c1", BuyerID: s.BuyerID, Seat: s.Seat, EventID: id},
		})
	}

	// The other events never reach it.
	for _, e := range []tickets.Event{scheduled("c1", 1), reserved("ada", "r1"), released("r1")} {
		announce.Given(e).Then()
	}
}

func TestSignalPayments(t *testing.T) {
	t.Parallel()
	signal := factostest.ForReactor(t, tickets.PaymentSignalsReactor(codec))
	paid := signal.Given(tickets.PaymentReceived{ReservationID: "r1", AmountCents: 4500})
	paid.Then(temporaleffects.SignalWorkflowEffect("payment-signal:"+paid.Record().ID.String(), temporaleffects.SignalWorkflow{
		WorkflowID: tickets.ReservationWorkflowID("r1"),
		Signal:     tickets.SignalPayment,
		Payload:    json.RawMessage(`4500`),
	}))
	signal.Given(sold("ada", 1)).Then()
}
