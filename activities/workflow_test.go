package activities_test

import (
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

func startOpts(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: "test"}
}

// The example workflows in the SDK's workflow test environment, with the
// real dispatch activity on a real database.
func TestBuyTicketWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	suite := quietSuite()
	for i, want := range []bool{true, false} {
		env := suite.NewTestWorkflowEnvironment()
		b.acts.Register(env)
		tickets.RegisterWorkflows(env)
		env.SetStartWorkflowOptions(startOpts("buy-" + string(rune('a'+i))))
		env.ExecuteWorkflow(tickets.BuyTicketWorkflow, tickets.BuyTicket{ConcertID: "c1", BuyerID: string(rune('a' + i))})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		var p tickets.Purchase
		if err := env.GetWorkflowResult(&p); err != nil || p.Sold != want {
			t.Fatalf("purchase %d: %+v %v, want sold=%v (capacity 1)", i, p, err, want)
		}
	}
}

func TestReservationWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.reg.Dispatch(b.ctx, tickets.CmdScheduleConcert, "schedule-c2", []byte(`{"concert_id":"c2","capacity":5}`), nil); err != nil {
		t.Fatal(err)
	}
	suite := quietSuite()
	run := func(id string, pay bool) string {
		env := suite.NewTestWorkflowEnvironment()
		b.acts.Register(env)
		tickets.RegisterWorkflows(env)
		env.SetStartWorkflowOptions(startOpts(tickets.ReservationWorkflowID(id)))
		if pay {
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(tickets.SignalPayment, 1500) }, time.Minute)
		}
		env.ExecuteWorkflow(tickets.ReservationWorkflow, tickets.Reservation{ConcertID: "c2", BuyerID: "b-" + id, ReservationID: id, PaymentWithin: 10 * time.Minute})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		var out tickets.ReservationOutcome
		if err := env.GetWorkflowResult(&out); err != nil {
			t.Fatal(err)
		}
		return out.Status
	}
	if got := run("r1", true); got != tickets.StatusConfirmed {
		t.Errorf("paid reservation: %s", got)
	}
	if got := run("r2", false); got != tickets.StatusReleased {
		t.Errorf("unpaid reservation: %s", got)
	}
	res, err := b.store.Read(b.ctx, eventstore.NewQuery(eventstore.Tags(tickets.ConcertTag("c2"))))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range res.Records {
		types = append(types, r.Type)
	}
	want := []string{tickets.TypeConcertScheduled, tickets.TypeTicketReserved, tickets.TypeTicketSold, tickets.TypeTicketReserved, tickets.TypeReservationReleased}
	if !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}
