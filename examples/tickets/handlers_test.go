package tickets_test

import (
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
	"github.com/factos-go/factos/internal/testdb"
)

var codec = tickets.NewCodec()

// Facts and commands about concert c1, and another concert's, to show
// that a rule's boundary leaves them out.
func scheduled(concert string, capacity int) tickets.Event {
	return tickets.ConcertScheduled{ConcertID: concert, Capacity: capacity}
}

func sold(buyer string, seat int) tickets.Event {
	return tickets.TicketSold{ConcertID: "c1", BuyerID: buyer, Seat: seat, Channel: tickets.SaleDirect}
}

func confirmed(buyer string, seat int, reservation string) tickets.Event {
	return tickets.TicketSold{ConcertID: "c1", BuyerID: buyer, Seat: seat, Channel: tickets.SaleReservation, ReservationID: reservation}
}

func reserved(buyer, reservation string) tickets.Event {
	return tickets.TicketReserved{ConcertID: "c1", BuyerID: buyer, ReservationID: reservation}
}

func released(reservation string) tickets.Event {
	return tickets.ReservationReleased{ConcertID: "c1", ReservationID: reservation}
}

var elsewhere = []tickets.Event{
	tickets.ConcertScheduled{ConcertID: "c2", Capacity: 1},
	tickets.TicketSold{ConcertID: "c2", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect},
	tickets.TicketReserved{ConcertID: "c2", BuyerID: "bob", ReservationID: "r9"},
}

// scenarios are named scenarios of the domain. run runs each in memory
// (opts.Store is nil) and then against a store over a database of its own,
// where the query is read by PostgreSQL.
type scenarios map[string]func(t *testing.T, opts *factostest.HandlerOpts)

func (s scenarios) run(t *testing.T) {
	for name, scenario := range s {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("memory", func(t *testing.T) {
				t.Parallel()
				scenario(t, &factostest.HandlerOpts{})
			})
			t.Run("store", func(t *testing.T) {
				t.Parallel()
				store, err := eventstore.New(testdb.New(t), nil)
				if err != nil {
					t.Fatal(err)
				}
				scenario(t, &factostest.HandlerOpts{Store: store})
			})
		})
	}
}

func TestScheduleConcert(t *testing.T) {
	t.Parallel()
	scenarios{
		"opens the sale": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ScheduleConcertHandler(codec), opts).
				Unrelated(elsewhere...).
				When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: 100}).
				Then(scheduled("c1", 100))
		},
		"once": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ScheduleConcertHandler(codec), opts).
				Given(scheduled("c1", 100)).
				When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: 50}).
				ThenRejected(tickets.ErrConcertExists)
		},
		"needs an id and a capacity": func(t *testing.T, opts *factostest.HandlerOpts) {
			schedule := factostest.ForHandler(t, tickets.ScheduleConcertHandler(codec), opts)
			schedule.When(tickets.ScheduleConcert{Capacity: 1}).ThenRejected(tickets.ErrInvalidCommand)
			schedule.When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: -1}).ThenRejected(tickets.ErrInvalidCommand)
			// More seats than the concert_sales view can count.
			schedule.When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: tickets.MaxCapacity + 1}).ThenRejected(tickets.ErrInvalidCommand)
		},
	}.run(t)
}

func TestBuyTicket(t *testing.T) {
	t.Parallel()
	scenarios{
		"first seat": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 2)).
				Unrelated(elsewhere...).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				Then(sold("ada", 1))
		},
		"seats are numbered after every sale, direct or confirmed": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 5), sold("bob", 1), reserved("cy", "r1"), confirmed("cy", 2, "r1")).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				Then(sold("ada", 3))
		},
		"held seats are not for sale": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 2), sold("bob", 1), reserved("cy", "r1")).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				ThenRejected(tickets.ErrSoldOut)
		},
		"released seats are": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 2), sold("bob", 1), reserved("cy", "r1"), released("r1")).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				Then(sold("ada", 2))
		},
		"sold out": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 1), sold("bob", 1)).
				Unrelated(elsewhere...).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				ThenRejected(tickets.ErrSoldOut)
		},
		"unknown concert": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				Unrelated(elsewhere...).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
				ThenRejected(tickets.ErrConcertNotFound)
		},
	}.run(t)
}

func TestReservations(t *testing.T) {
	t.Parallel()
	scenarios{
		"reserve a free seat": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReserveTicketHandler(codec), opts).
				Given(scheduled("c1", 2), sold("bob", 1)).
				Unrelated(elsewhere...).
				When(tickets.ReserveTicket{ConcertID: "c1", BuyerID: "ada", ReservationID: "r1"}).
				Then(reserved("ada", "r1"))
		},
		"a reservation is held once": func(t *testing.T, opts *factostest.HandlerOpts) {
			reserve := factostest.ForHandler(t, tickets.ReserveTicketHandler(codec), opts).Given(scheduled("c1", 5), reserved("bob", "r1"))
			reserve.When(tickets.ReserveTicket{ConcertID: "c1", BuyerID: "ada", ReservationID: "r1"}).ThenRejected(tickets.ErrReservationHeld)
		},
		"a confirmed reservation cannot be held again": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReserveTicketHandler(codec), opts).
				Given(scheduled("c1", 5), reserved("bob", "r1"), confirmed("bob", 1, "r1")).
				When(tickets.ReserveTicket{ConcertID: "c1", BuyerID: "bob", ReservationID: "r1"}).
				ThenRejected(tickets.ErrReservationHeld)
		},
		"no free seat": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReserveTicketHandler(codec), opts).
				Given(scheduled("c1", 1), reserved("bob", "r1")).
				When(tickets.ReserveTicket{ConcertID: "c1", BuyerID: "ada", ReservationID: "r2"}).
				ThenRejected(tickets.ErrSoldOut)
		},
		"confirm sells the held seat to its buyer": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ConfirmReservationHandler(codec), opts).
				Given(scheduled("c1", 2), sold("cy", 1), reserved("bob", "r1")).
				Unrelated(elsewhere...).
				When(tickets.ConfirmReservation{ConcertID: "c1", ReservationID: "r1"}).
				Then(confirmed("bob", 2, "r1"))
		},
		"confirm needs a held reservation": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ConfirmReservationHandler(codec), opts).
				Given(scheduled("c1", 2), reserved("bob", "r1"), released("r1")).
				When(tickets.ConfirmReservation{ConcertID: "c1", ReservationID: "r1"}).
				ThenRejected(tickets.ErrNoReservation)
		},
		"release frees the seat": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReleaseReservationHandler(codec), opts).
				Given(scheduled("c1", 2), reserved("bob", "r1")).
				When(tickets.ReleaseReservation{ConcertID: "c1", ReservationID: "r1"}).
				Then(released("r1"))
		},
		"releasing what is not held does nothing": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReleaseReservationHandler(codec), opts).
				Given(scheduled("c1", 2), reserved("bob", "r1"), confirmed("bob", 1, "r1")).
				When(tickets.ReleaseReservation{ConcertID: "c1", ReservationID: "r1"}).
				Then()
		},
	}.run(t)
}

func TestRecordPayment(t *testing.T) {
	t.Parallel()
	scenarios{
		"records a payment": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.RecordPaymentHandler(codec), opts).
				Unrelated(tickets.PaymentReceived{ReservationID: "r2", AmountCents: 900}).
				When(tickets.RecordPayment{ReservationID: "r1", AmountCents: 4500}).
				Then(tickets.PaymentReceived{ReservationID: "r1", AmountCents: 4500})
		},
		"once": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.RecordPaymentHandler(codec), opts).
				Given(tickets.PaymentReceived{ReservationID: "r1", AmountCents: 4500}).
				When(tickets.RecordPayment{ReservationID: "r1", AmountCents: 4500}).
				ThenRejected(tickets.ErrAlreadyPaid)
		},
		"a positive amount": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.RecordPaymentHandler(codec), opts).
				When(tickets.RecordPayment{ReservationID: "r1"}).
				ThenRejected(tickets.ErrInvalidCommand)
		},
	}.run(t)
}

func TestRegisterUser(t *testing.T) {
	t.Parallel()
	scenarios{
		"claims the username": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.RegisterUserHandler(codec), opts).
				Unrelated(tickets.UserRegistered{UserID: "u2", Username: "bob"}).
				When(tickets.RegisterUser{UserID: "u1", Username: "ada"}).
				Then(tickets.UserRegistered{UserID: "u1", Username: "ada"})
		},
		"a username is unique across users": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.RegisterUserHandler(codec), opts).
				Given(tickets.UserRegistered{UserID: "u2", Username: "ada"}).
				When(tickets.RegisterUser{UserID: "u1", Username: "ada"}).
				ThenRejected(tickets.ErrUsernameTaken)
		},
	}.run(t)
}
