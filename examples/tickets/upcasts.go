package tickets

// The domain's event versions. A payload changes version when bytes written
// by the previous release would not decode into the current Go type
// correctly; each change gets an upcaster from the version before it, and
// the frozen shape of that version next to it. Stored events are never
// rewritten: the codec upcasts them on every read.
//
// TicketSold
//
//	v1  concert_id, buyer_id, seat, reservation_id (omitted for direct sales)
//	v2  + channel: "direct" or "reservation". Derived for v1 payloads from
//	    whether the sale confirmed a reservation; the zero value "" would
//	    have been wrong for every old sale.

// ticketSoldV1 is TicketSold as version 1 stored it. It is frozen: it must
// not change when TicketSold does.
type ticketSoldV1 struct {
	ConcertID     string `json:"concert_id"`
	BuyerID       string `json:"buyer_id"`
	Seat          int    `json:"seat"`
	ReservationID string `json:"reservation_id,omitempty"`
}

// upcastTicketSoldV1 turns a version 1 sale into version 2. When version 3
// comes, freeze TicketSold as ticketSoldV2 and return that here instead, so
// that this step keeps producing version 2.
func upcastTicketSoldV1(old ticketSoldV1) (TicketSold, error) {
	channel := SaleDirect
	if old.ReservationID != "" {
		channel = SaleReservation
	}
	return TicketSold{ConcertID: old.ConcertID, BuyerID: old.BuyerID, Seat: old.Seat, Channel: channel, ReservationID: old.ReservationID}, nil
}
