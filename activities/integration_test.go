package activities_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testtemporal"
)

// These tests run against a real Temporal server (see testtemporal).

func (b *bundle) soldCount(t *testing.T, concert string) int {
	t.Helper()
	res, err := b.store.Read(b.ctx, eventstore.NewQuery(eventstore.TypesAndTags([]string{tickets.TypeTicketSold}, tickets.ConcertTag(concert))))
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Records)
}

func TestTicketSaleThroughWorkflowsNeverOversells(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.schedule(t, "big", 20)
	c := testtemporal.Client(t)
	queue := testtemporal.Worker(t, c, func(w worker.Worker) { b.acts.Register(w); tickets.RegisterWorkflows(w) })

	const buyers = 60
	var sold atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for i := range buyers {
		wg.Go(func() {
			run, err := c.ExecuteWorkflow(b.ctx, client.StartWorkflowOptions{ID: testtemporal.UniqueID("buy"), TaskQueue: queue},
				tickets.BuyTicketWorkflow, tickets.BuyTicket{ConcertID: "big", BuyerID: fmt.Sprint("b", i)})
			if err != nil {
				errs <- err
				return
			}
			var p tickets.Purchase
			if err := run.Get(b.ctx, &p); err != nil {
				errs <- err
				return
			}
			if p.Sold {
				sold.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if sold.Load() != 20 || b.soldCount(t, "big") != 20 {
		t.Fatalf("%d workflows bought and %d tickets stored, want 20 and 20", sold.Load(), b.soldCount(t, "big"))
	}
}

// A dispatch whose first attempt committed but whose completion never
// reached Temporal is retried; the retry appends nothing and answers with
// the first attempt's records.
func TestActivityRetryAfterCommitAppendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var attempts atomic.Int64
	activities.SetAfterDispatch(b.acts, func(ctx context.Context, res *activities.Result) error {
		if attempts.Add(1) == 1 {
			return errors.New("completion lost in transit")
		}
		return nil
	})
	c := testtemporal.Client(t)
	queue := testtemporal.Worker(t, c, func(w worker.Worker) {
		b.acts.Register(w)
		w.RegisterWorkflowWithOptions(resultWorkflow, workflow.RegisterOptions{Name: "resultWorkflow"})
	})
	run, err := c.ExecuteWorkflow(b.ctx, client.StartWorkflowOptions{ID: testtemporal.UniqueID("retry"), TaskQueue: queue},
		"resultWorkflow", tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.Result
	if err := run.Get(b.ctx, &res); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 2 || !res.Duplicate || len(res.Records) != 1 {
		t.Fatalf("%d attempts, result %+v: want 2 attempts answered from the first", attempts.Load(), res)
	}
	if n := b.soldCount(t, "c1"); n != 1 {
		t.Fatalf("%d tickets stored, want 1", n)
	}
}

func resultWorkflow(ctx workflow.Context, cmd tickets.BuyTicket) (*activities.Result, error) {
	return activities.ExecuteCommand(ctx, tickets.CmdBuyTicket, cmd, &activities.CommandOptions{CommandID: activities.CommandIDFor(ctx, "buy")})
}

// rejectionWorkflow returns the name of the domain error that rejected its
// command, checking that errors.Is sees the domain error value.
func rejectionWorkflow(ctx workflow.Context, cmd tickets.BuyTicket) (string, error) {
	_, err := activities.ExecuteCommand(ctx, tickets.CmdBuyTicket, cmd, &activities.CommandOptions{DomainErrors: tickets.DomainErrors})
	var de *activities.DomainError
	if errors.As(err, &de) && errors.Is(err, tickets.ErrSoldOut) {
		return de.Name, nil
	}
	return "", fmt.Errorf("want a sold-out DomainError, got %w", err)
}

func TestDomainRejectionIsNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sellOut(t)
	c := testtemporal.Client(t)
	queue := testtemporal.Worker(t, c, func(w worker.Worker) {
		b.acts.Register(w)
		w.RegisterWorkflowWithOptions(rejectionWorkflow, workflow.RegisterOptions{Name: "rejectionWorkflow"})
	})
	id := testtemporal.UniqueID("reject")
	run, err := c.ExecuteWorkflow(b.ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "rejectionWorkflow", tickets.BuyTicket{ConcertID: "c1", BuyerID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := run.Get(b.ctx, &name); err != nil || name != "SoldOut" {
		t.Fatalf("workflow saw %q, %v; want the SoldOut domain error", name, err)
	}
	// One attempt, one failure in the history.
	it := c.GetWorkflowHistory(b.ctx, id, run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	started, failed := 0, 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			started++
			if a := ev.GetActivityTaskStartedEventAttributes().GetAttempt(); a != 1 {
				t.Errorf("activity started at attempt %d, want 1", a)
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			failed++
		}
	}
	if started != 1 || failed != 1 {
		t.Errorf("history: %d activity starts, %d failures; want 1 and 1", started, failed)
	}
}
