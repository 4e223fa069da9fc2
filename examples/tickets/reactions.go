package tickets

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// Reactor names.
const (
	ReactorAnnounceSales  = "announce_sales"
	ReactorSignalPayments = "signal_payments"
)

// AnnounceSalesReactor is the sale announcer as it is registered: it
// receives every TicketSold and plans its announcement (AnnounceSales).
func AnnounceSalesReactor(codec eventstore.Codec[Event]) reactors.Reactor[Event] {
	return reactors.Reactor[Event]{
		Name:      ReactorAnnounceSales,
		Codec:     codec,
		Subscribe: eventstore.NewQuery(eventstore.Types(TypeTicketSold)),
		React:     AnnounceSales,
	}
}

// RegisterReactions adds the sale announcer and its effect handler to reg.
// The handler writes the announcement to ticket_announcements on pool; it
// is idempotent by effect key.
func RegisterReactions(reg *reactors.Registry, codec eventstore.Codec[Event], pool *pgxpool.Pool) error {
	if err := reactors.AddReactor(reg, AnnounceSalesReactor(codec)); err != nil {
		return err
	}
	return reactors.AddEffect(reg, reactors.EffectHandler[AnnounceTicketSale]{
		Kind: EffectAnnounceTicketSale,
		Handle: func(ctx context.Context, e reactors.Effect[AnnounceTicketSale]) error {
			_, err := pool.Exec(ctx, `INSERT INTO ticket_announcements (effect_key, concert_id, buyer_id, seat)
				VALUES ($1, $2, $3, $4) ON CONFLICT (effect_key) DO NOTHING`,
				e.Key, e.Args.ConcertID, e.Args.BuyerID, e.Args.Seat)
			return err
		},
	})
}

// SignalPayments signals a reservation's saga when its payment is
// committed. The effect key is derived from the event id, and the signal
// carries the amount.
func SignalPayments(rec eventstore.Record[Event]) ([]eventstore.PlannedEffect, error) {
	p, ok := rec.Event.(PaymentReceived)
	if !ok {
		return nil, nil
	}
	payload, err := json.Marshal(p.AmountCents)
	if err != nil {
		return nil, err
	}
	return []eventstore.PlannedEffect{temporaleffects.SignalWorkflowEffect("payment-signal:"+rec.ID.String(), temporaleffects.SignalWorkflow{
		WorkflowID: ReservationWorkflowID(p.ReservationID), Signal: SignalPayment, Payload: payload,
	})}, nil
}

// RegisterPaymentSignals adds the reactor that signals reservation sagas.
// The registry must also have the Temporal effects
// (temporaleffects.Add).
func RegisterPaymentSignals(reg *reactors.Registry, codec eventstore.Codec[Event]) error {
	return reactors.AddReactor(reg, PaymentSignalsReactor(codec))
}

// PaymentSignalsReactor is the payment signaller as it is registered: it
// receives every PaymentReceived and signals the reservation's saga
// (SignalPayments).
func PaymentSignalsReactor(codec eventstore.Codec[Event]) reactors.Reactor[Event] {
	return reactors.Reactor[Event]{
		Name:      ReactorSignalPayments,
		Codec:     codec,
		Subscribe: eventstore.NewQuery(eventstore.Types(TypePaymentReceived)),
		React:     SignalPayments,
	}
}
