package temporaleffects_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// The whole loop: a workflow sends a command, the facts are committed, a
// reactor plans a signal, the effect signals the workflow, which confirms.
func TestReservationSagaLoop(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	codec := tickets.NewCodec()
	c := testtemporal.Client(t)
	queue := testtemporal.UniqueID("saga")

	rreg := reactors.NewRegistry(nil)
	if err := temporaleffects.Add(rreg, temporaleffects.Adapter{Client: c, TaskQueue: queue}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tickets.RegisterPaymentSignals(rreg, codec); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, pool, rreg, nil)
	areg := startTicketWorker(t, c, queue, env.Store, codec)
	if _, err := areg.Dispatch(ctx, tickets.CmdScheduleConcert, "s", []byte(`{"concert_id":"c1","capacity":2}`), nil); err != nil {
		t.Fatal(err)
	}

	start := func(resID string, within time.Duration) client.WorkflowRun {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: tickets.ReservationWorkflowID(resID), TaskQueue: queue},
			tickets.ReservationWorkflow, tickets.Reservation{ConcertID: "c1", BuyerID: "b-" + resID, ReservationID: resID, PaymentWithin: within})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	paid := testtemporal.UniqueID("paid")
	unpaid := testtemporal.UniqueID("unpaid")
	paidRun := start(paid, time.Hour)
	unpaidRun := start(unpaid, 2*time.Second)

	testriver.WaitFor(t, 30*time.Second, "the reservation to be held", func() (bool, error) {
		res, err := env.Store.Read(ctx, eventstore.NewQuery(eventstore.Tags(tickets.ReservationTag(paid))))
		return err == nil && len(res.Records) == 1, err
	})
	// The payment arrives from outside (a webhook, say): a plain command.
	if _, err := areg.Dispatch(ctx, tickets.CmdRecordPayment, "pay-"+paid, fmt.Appendf(nil, `{"reservation_id":%q,"amount_cents":4200}`, paid), nil); err != nil {
		t.Fatal(err)
	}
	for run, want := range map[client.WorkflowRun]string{paidRun: tickets.StatusConfirmed, unpaidRun: tickets.StatusReleased} {
		var out tickets.ReservationOutcome
		if err := run.Get(ctx, &out); err != nil || out.Status != want {
			t.Errorf("workflow %s: %+v %v, want %s", run.GetID(), out, err, want)
		}
	}
	res, err := env.Store.Read(ctx, eventstore.NewQuery(eventstore.TypesAndTags([]string{tickets.TypeTicketSold}, tickets.ReservationTag(paid))))
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("confirmed tickets: %d, %v", len(res.Records), err)
	}
	if res.Records[0].Metadata["workflow_id"] != tickets.ReservationWorkflowID(paid) {
		t.Errorf("ticket metadata %v does not name the saga", res.Records[0].Metadata)
	}
}

// startTicketWorker registers the ticket commands on store and runs a
// Temporal worker of queue with their activities, the ticket workflows and
// register's own, until the test ends.
func startTicketWorker(t *testing.T, c client.Client, queue string, store *eventstore.Store, codec eventstore.Codec[tickets.Event], register ...func(worker.Worker)) *activities.Registry {
	t.Helper()
	areg := activities.NewRegistry(store, &activities.Config{DomainErrors: tickets.DomainErrors})
	if err := tickets.RegisterCommands(areg, codec); err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, queue, worker.Options{})
	areg.Activities().Register(w)
	tickets.RegisterWorkflows(w)
	for _, r := range register {
		r(w)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return areg
}
