package tickets

import (
	"errors"
	"time"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
)

// Command names, as workflows send them.
const (
	CmdScheduleConcert    = "tickets.ScheduleConcert"
	CmdBuyTicket          = "tickets.BuyTicket"
	CmdRegisterUser       = "tickets.RegisterUser"
	CmdReserveTicket      = "tickets.ReserveTicket"
	CmdConfirmReservation = "tickets.ConfirmReservation"
	CmdReleaseReservation = "tickets.ReleaseReservation"
	CmdRecordPayment      = "tickets.RecordPayment"
)

// RegisterCommands binds the domain's commands in reg.
func RegisterCommands(reg *activities.Registry, codec eventstore.Codec[Event]) error {
	return errors.Join(
		activities.Register(reg, CmdScheduleConcert, ScheduleConcertHandler(codec)),
		activities.Register(reg, CmdBuyTicket, BuyTicketHandler(codec)),
		activities.Register(reg, CmdRegisterUser, RegisterUserHandler(codec)),
		activities.Register(reg, CmdReserveTicket, ReserveTicketHandler(codec)),
		activities.Register(reg, CmdConfirmReservation, ConfirmReservationHandler(codec)),
		activities.Register(reg, CmdReleaseReservation, ReleaseReservationHandler(codec)),
		activities.Register(reg, CmdRecordPayment, RecordPaymentHandler(codec)),
	)
}

// RegisterWorkflows registers the domain's workflows with a Temporal worker.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflow(BuyTicketWorkflow)
	w.RegisterWorkflow(ReservationWorkflow)
}

// Purchase is the outcome of BuyTicketWorkflow.
type Purchase struct {
	// Sold is false when the concert was sold out.
	Sold     bool  `json:"sold"`
	Position int64 `json:"position,omitempty"`
}

// BuyTicketChange names the switch of BuyTicketWorkflow to the local
// activity for workflow.GetVersion; BuyTicketVersionLocal is the version
// that buys through it.
const (
	BuyTicketChange       = "buy-local"
	BuyTicketVersionLocal = 1
)

// BuyTicketWorkflow buys a ticket. Sold out is an outcome, not a failure.
//
// A purchase is one short command that a buyer waits for, so it goes
// through the local activity: it runs in this worker, inside the workflow
// task, and saves the activity task and the second workflow task of the
// regular path (activities' "Two paths" gives the trade-offs). The
// command id, derived from the workflow id, keeps it exactly-once however
// often the local activity runs.
//
// Executions started before the switch recorded a regular activity in
// their histories; GetVersion lets them replay on that path, as every
// change of a workflow's commands must.
func BuyTicketWorkflow(ctx workflow.Context, cmd BuyTicket) (Purchase, error) {
	res, err := activities.ExecuteCommand(ctx, CmdBuyTicket, cmd, &activities.CommandOptions{
		CommandID:    activities.CommandIDFor(ctx, "buy"),
		Local:        workflow.GetVersion(ctx, BuyTicketChange, workflow.DefaultVersion, BuyTicketVersionLocal) == BuyTicketVersionLocal,
		DomainErrors: DomainErrors,
	})
	if errors.Is(err, ErrSoldOut) {
		return Purchase{}, nil
	}
	if err != nil {
		return Purchase{}, err
	}
	return Purchase{Sold: true, Position: res.Records[0].Position}, nil
}

// SignalPayment is the signal a reservation workflow waits for.
const SignalPayment = "payment"

// ReservationWorkflowID is the workflow id of a reservation's saga, so that
// a reactor can signal it knowing only the reservation id.
func ReservationWorkflowID(reservationID string) string { return "reservation-" + reservationID }

// Reservation starts a reservation saga.
type Reservation struct {
	ConcertID     string        `json:"concert_id"`
	BuyerID       string        `json:"buyer_id"`
	ReservationID string        `json:"reservation_id"`
	PaymentWithin time.Duration `json:"payment_within"`
}

// Reservation outcomes.
const (
	StatusConfirmed = "confirmed"
	StatusReleased  = "released"
	StatusSoldOut   = "sold_out"
)

// ReservationOutcome is how a reservation saga ended.
type ReservationOutcome struct {
	Status string `json:"status"`
}

// ReservationWorkflow holds a seat, waits for the payment signal (sent by
// the signal_payments reactor when a PaymentReceived is committed) and
// confirms the seat, or releases it when no payment arrives in time.
//
// Its commands go through the regular activity: they are minutes apart,
// so the hand-offs a local activity saves do not matter, and a step that
// retries through an outage shows in Temporal's UI as a pending activity
// with its attempts and last failure.
func ReservationWorkflow(ctx workflow.Context, r Reservation) (ReservationOutcome, error) {
	opts := func(key string) *activities.CommandOptions {
		return &activities.CommandOptions{CommandID: activities.CommandIDFor(ctx, key), DomainErrors: DomainErrors}
	}
	_, err := activities.ExecuteCommand(ctx, CmdReserveTicket,
		ReserveTicket{ConcertID: r.ConcertID, BuyerID: r.BuyerID, ReservationID: r.ReservationID}, opts("reserve"))
	if errors.Is(err, ErrSoldOut) {
		return ReservationOutcome{Status: StatusSoldOut}, nil
	}
	if err != nil {
		return ReservationOutcome{}, err
	}

	paid := false
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalPayment), func(c workflow.ReceiveChannel, _ bool) {
		var amount any
		c.Receive(ctx, &amount)
		paid = true
		cancelTimer()
	})
	sel.AddFuture(workflow.NewTimer(timerCtx, r.PaymentWithin), func(workflow.Future) {})
	sel.Select(ctx)

	if paid {
		_, err := activities.ExecuteCommand(ctx, CmdConfirmReservation,
			ConfirmReservation{ConcertID: r.ConcertID, ReservationID: r.ReservationID}, opts("confirm"))
		if err != nil {
			return ReservationOutcome{}, err
		}
		return ReservationOutcome{Status: StatusConfirmed}, nil
	}
	_, err = activities.ExecuteCommand(ctx, CmdReleaseReservation,
		ReleaseReservation{ConcertID: r.ConcertID, ReservationID: r.ReservationID}, opts("release"))
	if err != nil {
		return ReservationOutcome{}, err
	}
	return ReservationOutcome{Status: StatusReleased}, nil
}
