package activities_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testtemporal"
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
	b.schedule(t, "c2", 5)
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

// buyTicketBeforeLocal is tickets.BuyTicketWorkflow as it was before it
// switched to the local activity.
func buyTicketBeforeLocal(ctx workflow.Context, cmd tickets.BuyTicket) (tickets.Purchase, error) {
	return buyTicket(ctx, cmd, false)
}

// buyTicketUnguarded switches to the local activity without GetVersion.
func buyTicketUnguarded(ctx workflow.Context, cmd tickets.BuyTicket) (tickets.Purchase, error) {
	return buyTicket(ctx, cmd, true)
}

func buyTicket(ctx workflow.Context, cmd tickets.BuyTicket, local bool) (tickets.Purchase, error) {
	res, err := activities.ExecuteCommand(ctx, tickets.CmdBuyTicket, cmd, &activities.CommandOptions{
		CommandID: activities.CommandIDFor(ctx, "buy"), Local: local, DomainErrors: tickets.DomainErrors})
	if errors.Is(err, tickets.ErrSoldOut) {
		return tickets.Purchase{}, nil
	}
	if err != nil {
		return tickets.Purchase{}, err
	}
	return tickets.Purchase{Sold: true, Position: res.Records[0].Position}, nil
}

// BuyTicketWorkflow switched to the local activity behind GetVersion: the
// histories of purchases started before the switch replay with today's
// code on the regular path, new ones record a local activity, and the
// same switch without the guard breaks the old histories (which shows
// the replay can fail).
func TestBuyTicketWorkflowReplaysHistoriesOfBothPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.schedule(t, "c3", 10)
	c := testtemporal.Client(t)
	record := func(register func(w worker.Worker), buyer string) *historypb.History {
		t.Helper()
		queue := testtemporal.Worker(t, c, func(w worker.Worker) { b.acts.Register(w); register(w) })
		id := testtemporal.UniqueID("replay")
		run, err := c.ExecuteWorkflow(b.ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "BuyTicketWorkflow", tickets.BuyTicket{ConcertID: "c3", BuyerID: buyer})
		if err != nil {
			t.Fatal(err)
		}
		var p tickets.Purchase
		if err := run.Get(b.ctx, &p); err != nil || !p.Sold {
			t.Fatalf("purchase %+v, %v", p, err)
		}
		h := &historypb.History{}
		it := c.GetWorkflowHistory(b.ctx, id, run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
		}
		return h
	}
	before := record(func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(buyTicketBeforeLocal, workflow.RegisterOptions{Name: "BuyTicketWorkflow"})
	}, "before")
	now := record(func(w worker.Worker) { tickets.RegisterWorkflows(w) }, "now")
	for name, h := range map[string]*historypb.History{"before": before, "now": now} {
		var scheduled, markers int
		for _, ev := range h.Events {
			switch ev.GetEventType() {
			case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				scheduled++
			case enums.EVENT_TYPE_MARKER_RECORDED:
				markers++
			}
		}
		if local := name == "now"; (scheduled == 0) != local || (markers > 0) != local {
			t.Errorf("history %s: %d activities scheduled, %d markers", name, scheduled, markers)
		}
	}

	replay := func(wf any, h *historypb.History) error {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "BuyTicketWorkflow"})
		return r.ReplayWorkflowHistory(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), h)
	}
	for name, h := range map[string]*historypb.History{"before": before, "now": now} {
		if err := replay(tickets.BuyTicketWorkflow, h); err != nil {
			t.Errorf("history %s does not replay with BuyTicketWorkflow: %v", name, err)
		}
	}
	if err := replay(buyTicketUnguarded, before); err == nil {
		t.Error("the old history replays with an unguarded switch; the replay check cannot fail")
	}
}
