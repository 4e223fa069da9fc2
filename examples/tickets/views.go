package tickets

import "github.com/factos-go/factos/eventstore"

// SaleState is a read model of one concert's sale.
type SaleState struct {
	Capacity int `json:"capacity"`
	// Sold counts the sold seats by channel (SaleDirect, SaleReservation).
	Sold map[string]int `json:"sold"`
	// Buyers maps each sold seat to its buyer.
	Buyers map[int]string `json:"buyers"`
	// Held maps each reservation holding a seat to its buyer.
	Held map[string]string `json:"held"`
}

// SaleStateQuery selects the records SaleStateView reads: the
// concert's schedule, sales and reservations.
func SaleStateQuery(concertID string) eventstore.Query { return saleQuery(concertID) }

// SaleStateView folds a concert's sale into SaleState:
//
//	sales, _, err := eventstore.Project(ctx, store, codec, tickets.SaleStateQuery(id), tickets.SaleStateView())
//
// Sales stored before TicketSold had a channel (version 1) are counted by
// the channel their upcaster derives.
func SaleStateView() eventstore.View[Event, SaleState] {
	return eventstore.View[Event, SaleState]{
		// Fresh maps for every fold, so that Evolve may update them in place.
		Initial: func() SaleState {
			return SaleState{Sold: map[string]int{}, Buyers: map[int]string{}, Held: map[string]string{}}
		},
		Evolve: func(s SaleState, rec eventstore.Record[Event]) SaleState {
			switch e := rec.Event.(type) {
			case ConcertScheduled:
				s.Capacity = e.Capacity
			case TicketSold:
				s.Sold[e.Channel]++
				s.Buyers[e.Seat] = e.BuyerID
				delete(s.Held, e.ReservationID)
			case TicketReserved:
				s.Held[e.ReservationID] = e.BuyerID
			case ReservationReleased:
				delete(s.Held, e.ReservationID)
			}
			return s
		},
	}
}
