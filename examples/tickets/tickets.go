// Package tickets is the example domain of factos: a ticket sale whose
// capacity rule spans many buyers' streams, and a username rule that must
// hold across every user's stream. Tests, benchmarks and the worker binary
// use it; applications can read it as a template.
package tickets

import (
	"errors"
	"fmt"

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
type TicketSold struct {
	ConcertID string `json:"concert_id"`
	BuyerID   string `json:"buyer_id"`
	Seat      int    `json:"seat"`
}

// UserRegistered claims a username for a user.
type UserRegistered struct {
	UserID   string `json:"user_id"`
	Username string `json:"username"`
}

func (ConcertScheduled) isEvent() {}
func (TicketSold) isEvent()       {}
func (UserRegistered) isEvent()   {}

// Event type names as stored.
const (
	TypeConcertScheduled = "ConcertScheduled"
	TypeTicketSold       = "TicketSold"
	TypeUserRegistered   = "UserRegistered"
)

// Tags.
func ConcertTag(id string) string    { return "concert:" + id }
func BuyerTag(id string) string      { return "buyer:" + id }
func UserTag(id string) string       { return "user:" + id }
func UsernameTag(name string) string { return "username:" + name }

// Streams.
func ConcertStream(id string) string { return "concert-" + id }
func BuyerStream(id string) string   { return "buyer-" + id }
func UserStream(id string) string    { return "user-" + id }

// Domain errors: a command rejected by a rule.
var (
	ErrConcertExists   = errors.New("concert already scheduled")
	ErrConcertNotFound = errors.New("concert not found")
	ErrSoldOut         = errors.New("sold out")
	ErrUsernameTaken   = errors.New("username taken")
	ErrInvalidCommand  = errors.New("invalid command")
)

// NewCodec returns the JSON codec of the domain's events.
func NewCodec() *eventstore.JSONCodec[Event] {
	c := eventstore.NewJSONCodec[Event]()
	eventstore.RegisterJSON(c, eventstore.JSONType[ConcertScheduled]{
		Name: TypeConcertScheduled, Version: 1,
		Tags: func(e ConcertScheduled) []string { return []string{ConcertTag(e.ConcertID)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[TicketSold]{
		Name: TypeTicketSold, Version: 1,
		Tags: func(e TicketSold) []string { return []string{ConcertTag(e.ConcertID), BuyerTag(e.BuyerID)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[UserRegistered]{
		Name: TypeUserRegistered, Version: 1,
		Tags: func(e UserRegistered) []string { return []string{UserTag(e.UserID), UsernameTag(e.Username)} },
	})
	return c
}

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
				if c.ConcertID == "" || c.Capacity < 0 {
					return nil, fmt.Errorf("%w: concert id required and capacity >= 0", ErrInvalidCommand)
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

// Sale is the state of a concert's sale.
type Sale struct {
	Scheduled bool
	Capacity  int
	Sold      int
}

// BuyTicketHandler dispatches BuyTicket. Its context is the concert's
// schedule and every ticket sold for it, whatever the buyer's stream, so two
// buyers racing for the last seat cannot both get it. The ticket is appended
// to the buyer's stream.
func BuyTicketHandler(codec eventstore.Codec[Event]) eventstore.Handler[BuyTicket, Event, Sale] {
	return eventstore.Handler[BuyTicket, Event, Sale]{
		Codec:  codec,
		Stream: func(c BuyTicket) string { return BuyerStream(c.BuyerID) },
		Query: func(c BuyTicket) eventstore.Query {
			return eventstore.NewQuery(eventstore.TypesAndTags(
				[]string{TypeConcertScheduled, TypeTicketSold}, ConcertTag(c.ConcertID)))
		},
		Decider: eventstore.Decider[BuyTicket, Event, Sale]{
			Evolve: func(s Sale, e Event) Sale {
				switch e := e.(type) {
				case ConcertScheduled:
					s.Scheduled, s.Capacity = true, e.Capacity
				case TicketSold:
					s.Sold++
				}
				return s
			},
			Decide: func(s Sale, c BuyTicket) ([]Event, error) {
				switch {
				case c.ConcertID == "" || c.BuyerID == "":
					return nil, fmt.Errorf("%w: concert and buyer ids required", ErrInvalidCommand)
				case !s.Scheduled:
					return nil, ErrConcertNotFound
				case s.Sold >= s.Capacity:
					return nil, ErrSoldOut
				}
				return []Event{TicketSold{ConcertID: c.ConcertID, BuyerID: c.BuyerID, Seat: s.Sold + 1}}, nil
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
// plans the same effect and it runs once.
func AnnounceSales(rec eventstore.Record[Event]) ([]eventstore.Effect, error) {
	sold, ok := rec.Event.(TicketSold)
	if !ok {
		return nil, nil
	}
	return []eventstore.Effect{{
		Kind: EffectAnnounceTicketSale,
		Key:  "announce-sale:" + rec.ID.String(),
		Args: AnnounceTicketSale{ConcertID: sold.ConcertID, BuyerID: sold.BuyerID, Seat: sold.Seat, EventID: rec.ID.String()},
	}}, nil
}
