// Package tickets is the example domain of factos: a ticket sale whose
// capacity rule spans many buyers' streams, and a username rule that must
// hold across every user's stream. Tests, benchmarks and the worker binary
// use it; applications can read it as a template.
package tickets

import (
	"errors"
	"fmt"
	"math"

	"github.com/factos-go/factos/eventstore"
)

// Event is the union of the domain's events.
type Event interface{ isEvent() }

// ConcertScheduled opens a concert's sale with a fixed capacity.
type ConcertScheduled struct {
	ConcertID string `json:"concert_id"`
	Capacity  int    `json:"capacity"`
}

// TicketSold records one sold seat. Seats are numbered from 1 without gaps.
//
// Version 2 added Channel. Payloads stored at version 1 are upcast when
// read (see upcasts.go): history is not rewritten.
type TicketSold struct {
	ConcertID string `json:"concert_id"`
	BuyerID   string `json:"buyer_id"`
	Seat      int    `json:"seat"`
	// Channel is how the seat was sold: SaleDirect or SaleReservation.
	Channel string `json:"channel"`
	// ReservationID is set when the sale confirms a reservation.
	ReservationID string `json:"reservation_id,omitempty"`
}

// Sale channels of TicketSold.
const (
	// SaleDirect: bought outright (BuyTicket).
	SaleDirect = "direct"
	// SaleReservation: a held seat, confirmed (ConfirmReservation).
	SaleReservation = "reservation"
)

// TicketReserved holds a seat for a buyer until the reservation is
// confirmed (a TicketSold with its id) or released.
type TicketReserved struct {
	ConcertID     string `json:"concert_id"`
	BuyerID       string `json:"buyer_id"`
	ReservationID string `json:"reservation_id"`
}

// ReservationReleased frees a held seat.
type ReservationReleased struct {
	ConcertID     string `json:"concert_id"`
	ReservationID string `json:"reservation_id"`
}

// PaymentReceived records a payment for a reservation.
type PaymentReceived struct {
	ReservationID string `json:"reservation_id"`
	AmountCents   int64  `json:"amount_cents"`
}

// UserRegistered claims a username for a user.
type UserRegistered struct {
	UserID   string `json:"user_id"`
	Username string `json:"username"`
}

func (ConcertScheduled) isEvent()    {}
func (TicketSold) isEvent()          {}
func (TicketReserved) isEvent()      {}
func (ReservationReleased) isEvent() {}
func (PaymentReceived) isEvent()     {}
func (UserRegistered) isEvent()      {}

// Event type names as stored.
const (
	TypeConcertScheduled    = "ConcertScheduled"
	TypeTicketSold          = "TicketSold"
	TypeTicketReserved      = "TicketReserved"
	TypeReservationReleased = "ReservationReleased"
	TypePaymentReceived     = "PaymentReceived"
	TypeUserRegistered      = "UserRegistered"
)

// Tags.
func ConcertTag(id string) string     { return "concert:" + id }
func BuyerTag(id string) string       { return "buyer:" + id }
func UserTag(id string) string        { return "user:" + id }
func UsernameTag(name string) string  { return "username:" + name }
func ReservationTag(id string) string { return "reservation:" + id }

// Streams.
func ConcertStream(id string) string            { return "concert-" + id }
func BuyerStream(id string) string              { return "buyer-" + id }
func UserStream(id string) string               { return "user-" + id }
func PaymentStream(reservationID string) string { return "payment-" + reservationID }

// Domain errors: a command rejected by a rule.
var (
	ErrConcertExists   = errors.New("concert already scheduled")
	ErrConcertNotFound = errors.New("concert not found")
	ErrSoldOut         = errors.New("sold out")
	ErrUsernameTaken   = errors.New("username taken")
	ErrInvalidCommand  = errors.New("invalid command")
	ErrReservationHeld = errors.New("reservation already exists")
	ErrNoReservation   = errors.New("no such reservation held")
	ErrAlreadyPaid     = errors.New("reservation already paid")
)

// DomainErrors names the domain errors for the trip through Temporal: an
// activity reports a rejection by name, and the workflow side maps the name
// back to the same error value.
var DomainErrors = map[string]error{
	"ConcertExists":   ErrConcertExists,
	"ConcertNotFound": ErrConcertNotFound,
	"SoldOut":         ErrSoldOut,
	"UsernameTaken":   ErrUsernameTaken,
	"InvalidCommand":  ErrInvalidCommand,
	"ReservationHeld": ErrReservationHeld,
	"NoReservation":   ErrNoReservation,
	"AlreadyPaid":     ErrAlreadyPaid,
}

// NewCodec returns the JSON codec of the domain's events.
func NewCodec() *eventstore.JSONCodec[Event] {
	c := eventstore.NewJSONCodec[Event]()
	eventstore.RegisterJSON(c, eventstore.JSONType[ConcertScheduled]{
		Name: TypeConcertScheduled, Version: 1,
		Tags: func(e ConcertScheduled) []string { return []string{ConcertTag(e.ConcertID)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[TicketSold]{
		Name: TypeTicketSold, Version: 2,
		Upcasters: []eventstore.Upcaster{eventstore.UpcastJSON(1, upcastTicketSoldV1)},
		Tags: func(e TicketSold) []string {
			tags := []string{ConcertTag(e.ConcertID), BuyerTag(e.BuyerID)}
			if e.ReservationID != "" {
				tags = append(tags, ReservationTag(e.ReservationID))
			}
			return tags
		},
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[TicketReserved]{
		Name: TypeTicketReserved, Version: 1,
		Tags: func(e TicketReserved) []string {
			return []string{ConcertTag(e.ConcertID), BuyerTag(e.BuyerID), ReservationTag(e.ReservationID)}
		},
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[ReservationReleased]{
		Name: TypeReservationReleased, Version: 1,
		Tags: func(e ReservationReleased) []string {
			return []string{ConcertTag(e.ConcertID), ReservationTag(e.ReservationID)}
		},
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[PaymentReceived]{
		Name: TypePaymentReceived, Version: 1,
		Tags: func(e PaymentReceived) []string { return []string{ReservationTag(e.ReservationID)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[UserRegistered]{
		Name: TypeUserRegistered, Version: 1,
		Tags: func(e UserRegistered) []string { return []string{UserTag(e.UserID), UsernameTag(e.Username)} },
	})
	return c
}

// MaxCapacity is the most seats a concert may have: the concert_sales
// view stores capacities and seat counts as PostgreSQL integers.
const MaxCapacity = math.MaxInt32

// ScheduleConcert opens a sale. Its boundary is the concert's own stream.
type ScheduleConcert struct {
	ConcertID string `json:"concert_id"`
	Capacity  int    `json:"capacity"`
}

// ScheduleConcertHandler dispatches ScheduleConcert by stream revision.
func ScheduleConcertHandler(codec eventstore.Codec[Event]) eventstore.Handler[ScheduleConcert, Event, bool] {
	return eventstore.Handler[ScheduleConcert, Event, bool]{
		Codec:  codec,
		Stream: func(c ScheduleConcert) string { return ConcertStream(c.ConcertID) },
		Decider: eventstore.Decider[ScheduleConcert, Event, bool]{
			Evolve: func(scheduled bool, e Event) bool {
				_, ok := e.(ConcertScheduled)
				return scheduled || ok
			},
			Decide: func(scheduled bool, c ScheduleConcert) ([]Event, error) {
				if c.ConcertID == "" || c.Capacity < 0 || c.Capacity > MaxCapacity {
					return nil, fmt.Errorf("%w: concert id required and capacity from 0 to %d", ErrInvalidCommand, MaxCapacity)
				}
				if scheduled {
					return nil, ErrConcertExists
				}
				return []Event{ConcertScheduled(c)}, nil
			},
		},
	}
}

// BuyTicket buys one seat of a concert for a buyer.
type BuyTicket struct {
	ConcertID string `json:"concert_id"`
	BuyerID   string `json:"buyer_id"`
}

// Sale is the state of a concert's sale: seats sold, and seats held by
// reservations that are neither confirmed nor released.
type Sale struct {
	Scheduled bool
	Capacity  int
	Sold      int
	// Held maps a held reservation's id to its buyer.
	Held map[string]string
	// Confirmed reservations, which can be neither held again nor released.
	Confirmed map[string]bool
}

// Free is the number of seats neither sold nor held.
func (s Sale) Free() int { return s.Capacity - s.Sold - len(s.Held) }

// saleQuery is the context of every sale decision: the concert's schedule,
// its sales and its reservations, whatever the buyer's stream.
func saleQuery(concertID string) eventstore.Query {
	return eventstore.NewQuery(eventstore.TypesAndTags(
		[]string{TypeConcertScheduled, TypeTicketSold, TypeTicketReserved, TypeReservationReleased}, ConcertTag(concertID)))
}

// evolveSale folds the sale's events. The maps are created by newSale for
// each decision, so updating them in place keeps the fold pure.
func evolveSale(s Sale, e Event) Sale {
	switch e := e.(type) {
	case ConcertScheduled:
		s.Scheduled, s.Capacity = true, e.Capacity
	case TicketSold:
		s.Sold++
		if e.ReservationID != "" {
			delete(s.Held, e.ReservationID)
			s.Confirmed[e.ReservationID] = true
		}
	case TicketReserved:
		s.Held[e.ReservationID] = e.BuyerID
	case ReservationReleased:
		delete(s.Held, e.ReservationID)
	}
	return s
}

func newSale() Sale { return Sale{Held: map[string]string{}, Confirmed: map[string]bool{}} }

func saleDecider[C any](decide func(Sale, C) ([]Event, error)) eventstore.Decider[C, Event, Sale] {
	return eventstore.Decider[C, Event, Sale]{Initial: newSale, Evolve: evolveSale, Decide: decide}
}

// BuyTicketHandler dispatches BuyTicket. Its context is the concert's
// schedule, sales and reservations, whatever the buyer's stream, so two
// buyers racing for the last seat cannot both get it. The ticket is appended
// to the buyer's stream.
func BuyTicketHandler(codec eventstore.Codec[Event]) eventstore.Handler[BuyTicket, Event, Sale] {
	return eventstore.Handler[BuyTicket, Event, Sale]{
		Codec:  codec,
		Stream: func(c BuyTicket) string { return BuyerStream(c.BuyerID) },
		Query:  func(c BuyTicket) eventstore.Query { return saleQuery(c.ConcertID) },
		Decider: saleDecider(func(s Sale, c BuyTicket) ([]Event, error) {
			switch {
			case c.ConcertID == "" || c.BuyerID == "":
				return nil, fmt.Errorf("%w: concert and buyer ids required", ErrInvalidCommand)
			case !s.Scheduled:
				return nil, ErrConcertNotFound
			case s.Free() <= 0:
				return nil, ErrSoldOut
			}
			return []Event{TicketSold{ConcertID: c.ConcertID, BuyerID: c.BuyerID, Seat: s.Sold + 1, Channel: SaleDirect}}, nil
		}),
	}
}

// ReserveTicket holds a seat for a buyer.
type ReserveTicket struct {
	ConcertID     string `json:"concert_id"`
	BuyerID       string `json:"buyer_id"`
	ReservationID string `json:"reservation_id"`
}

// ReserveTicketHandler holds a seat if one is free.
func ReserveTicketHandler(codec eventstore.Codec[Event]) eventstore.Handler[ReserveTicket, Event, Sale] {
	return eventstore.Handler[ReserveTicket, Event, Sale]{
		Codec:  codec,
		Stream: func(c ReserveTicket) string { return BuyerStream(c.BuyerID) },
		Query:  func(c ReserveTicket) eventstore.Query { return saleQuery(c.ConcertID) },
		Decider: saleDecider(func(s Sale, c ReserveTicket) ([]Event, error) {
			switch {
			case c.ConcertID == "" || c.BuyerID == "" || c.ReservationID == "":
				return nil, fmt.Errorf("%w: concert, buyer and reservation ids required", ErrInvalidCommand)
			case !s.Scheduled:
				return nil, ErrConcertNotFound
			case s.Held[c.ReservationID] != "" || s.Confirmed[c.ReservationID]:
				return nil, ErrReservationHeld
			case s.Free() <= 0:
				return nil, ErrSoldOut
			}
			return []Event{TicketReserved(c)}, nil
		}),
	}
}

// ConfirmReservation turns a held seat into a sold ticket.
type ConfirmReservation struct {
	ConcertID     string `json:"concert_id"`
	ReservationID string `json:"reservation_id"`
}

// ConfirmReservationHandler sells the held seat.
func ConfirmReservationHandler(codec eventstore.Codec[Event]) eventstore.Handler[ConfirmReservation, Event, Sale] {
	return eventstore.Handler[ConfirmReservation, Event, Sale]{
		Codec:  codec,
		Stream: func(c ConfirmReservation) string { return "reservation-" + c.ReservationID },
		Query:  func(c ConfirmReservation) eventstore.Query { return saleQuery(c.ConcertID) },
		Decider: saleDecider(func(s Sale, c ConfirmReservation) ([]Event, error) {
			buyer, held := s.Held[c.ReservationID]
			if !held {
				return nil, ErrNoReservation
			}
			return []Event{TicketSold{ConcertID: c.ConcertID, BuyerID: buyer, Seat: s.Sold + 1, Channel: SaleReservation, ReservationID: c.ReservationID}}, nil
		}),
	}
}

// ReleaseReservation frees a held seat. Releasing a reservation that is
// not held does nothing, so the saga can release without checking first.
type ReleaseReservation struct {
	ConcertID     string `json:"concert_id"`
	ReservationID string `json:"reservation_id"`
}

// ReleaseReservationHandler frees the held seat.
func ReleaseReservationHandler(codec eventstore.Codec[Event]) eventstore.Handler[ReleaseReservation, Event, Sale] {
	return eventstore.Handler[ReleaseReservation, Event, Sale]{
		Codec:  codec,
		Stream: func(c ReleaseReservation) string { return "reservation-" + c.ReservationID },
		Query:  func(c ReleaseReservation) eventstore.Query { return saleQuery(c.ConcertID) },
		Decider: saleDecider(func(s Sale, c ReleaseReservation) ([]Event, error) {
			if _, held := s.Held[c.ReservationID]; !held {
				return nil, nil
			}
			return []Event{ReservationReleased(c)}, nil
		}),
	}
}

// RecordPayment records a payment for a reservation, once.
type RecordPayment struct {
	ReservationID string `json:"reservation_id"`
	AmountCents   int64  `json:"amount_cents"`
}

// RecordPaymentHandler dispatches by stream revision: the reservation's
// payment stream is the whole context.
func RecordPaymentHandler(codec eventstore.Codec[Event]) eventstore.Handler[RecordPayment, Event, bool] {
	return eventstore.Handler[RecordPayment, Event, bool]{
		Codec:  codec,
		Stream: func(c RecordPayment) string { return PaymentStream(c.ReservationID) },
		Decider: eventstore.Decider[RecordPayment, Event, bool]{
			Evolve: func(paid bool, e Event) bool { _, ok := e.(PaymentReceived); return paid || ok },
			Decide: func(paid bool, c RecordPayment) ([]Event, error) {
				switch {
				case c.ReservationID == "" || c.AmountCents <= 0:
					return nil, fmt.Errorf("%w: reservation id and a positive amount required", ErrInvalidCommand)
				case paid:
					return nil, ErrAlreadyPaid
				}
				return []Event{PaymentReceived(c)}, nil
			},
		},
	}
}

// RegisterUser claims a username, unique across all users.
type RegisterUser struct {
	UserID   string `json:"user_id"`
	Username string `json:"username"`
}

// RegisterUserHandler dispatches RegisterUser. Its context is every
// registration of the username, in any user's stream.
func RegisterUserHandler(codec eventstore.Codec[Event]) eventstore.Handler[RegisterUser, Event, bool] {
	return eventstore.Handler[RegisterUser, Event, bool]{
		Codec:  codec,
		Stream: func(c RegisterUser) string { return UserStream(c.UserID) },
		Query: func(c RegisterUser) eventstore.Query {
			return eventstore.NewQuery(eventstore.TypesAndTags([]string{TypeUserRegistered}, UsernameTag(c.Username)))
		},
		Decider: eventstore.Decider[RegisterUser, Event, bool]{
			Evolve: func(taken bool, e Event) bool { _, ok := e.(UserRegistered); return taken || ok },
			Decide: func(taken bool, c RegisterUser) ([]Event, error) {
				if c.UserID == "" || c.Username == "" {
					return nil, fmt.Errorf("%w: user id and username required", ErrInvalidCommand)
				}
				if taken {
					return nil, ErrUsernameTaken
				}
				return []Event{UserRegistered(c)}, nil
			},
		},
	}
}

// EffectAnnounceTicketSale is the kind of the effect that announces a sale.
const EffectAnnounceTicketSale = "announce_ticket_sale"

// AnnounceTicketSale are the effect's arguments.
type AnnounceTicketSale struct {
	ConcertID string `json:"concert_id"`
	BuyerID   string `json:"buyer_id"`
	Seat      int    `json:"seat"`
	EventID   string `json:"event_id"`
}

// AnnounceSales is the domain's reactor: every sold ticket is announced
// once. The effect key is derived from the event id, so a replayed reaction
// plans the same effect and it runs once. A buyer's announcements carry
// the buyer's tag as their ordering key, so they reach the buyer in the
// order of the sales, one at a time; different buyers' run in parallel.
func AnnounceSales(rec eventstore.Record[Event]) ([]eventstore.PlannedEffect, error) {
	sold, ok := rec.Event.(TicketSold)
	if !ok {
		return nil, nil
	}
	return []eventstore.PlannedEffect{{
		Kind:        EffectAnnounceTicketSale,
		Key:         "announce-sale:" + rec.ID.String(),
		OrderingKey: BuyerTag(sold.BuyerID),
		Args:        AnnounceTicketSale{ConcertID: sold.ConcertID, BuyerID: sold.BuyerID, Seat: sold.Seat, EventID: rec.ID.String()},
	}}, nil
}
