package activities_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testtemporal"
)

// The local path against a real Temporal server: what it saves, and every
// way its dispatch can run more than once.

// buyWorker starts a worker serving the dispatch activities and the test
// workflows (buyWorkflow, and extra under their names).
func buyWorker(t *testing.T, b *bundle, c client.Client, extra map[string]any) string {
	t.Helper()
	return testtemporal.Worker(t, c, func(w worker.Worker) {
		b.acts.Register(w)
		w.RegisterWorkflowWithOptions(buyWorkflow, workflow.RegisterOptions{Name: buyWorkflowName})
		for name, wf := range extra {
			w.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
		}
	})
}

// runBuy runs the workflow to completion and returns what it saw.
func runBuy(t *testing.T, c client.Client, opts client.StartWorkflowOptions, wf string, in buyInput) (buyOutcome, client.WorkflowRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, opts, wf, in)
	if err != nil {
		t.Fatal(err)
	}
	var out buyOutcome
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	return out, run
}

// wantSoldOnce fails the test unless the workflow got a result of one
// record (an answer from the stored result if duplicate) and concert c1
// has one ticket sold.
func (b *bundle) wantSoldOnce(t *testing.T, out buyOutcome, duplicate bool) {
	t.Helper()
	if out.Result == nil || out.Result.Duplicate != duplicate || len(out.Result.Records) != 1 {
		t.Fatalf("outcome %+v, want one record with duplicate %v", out, duplicate)
	}
	if n := b.soldCount(t, "c1"); n != 1 {
		t.Fatalf("%d tickets stored, want 1", n)
	}
}

// eventCounts counts a run's history events by type.
func eventCounts(t *testing.T, c client.Client, id, runID string) map[enums.EventType]int {
	t.Helper()
	n := map[enums.EventType]int{}
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		n[ev.GetEventType()]++
	}
	return n
}

// The local path saves the hand-offs: one workflow task runs the command
// and completes the workflow, where the regular path needs an activity
// task and a second workflow task. The results are the same, and so are
// the correlation ids on the events.
func TestLocalPathSavesHandOffs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.schedule(t, "c9", 10)
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, nil)
	type want struct{ workflowTasks, activityTasks, markers int }
	for path, w := range map[bool]want{false: {2, 1, 0}, true: {1, 0, 1}} {
		id := testtemporal.UniqueID("handoffs")
		out, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, buyWorkflowName,
			buyInput{Buy: tickets.BuyTicket{ConcertID: "c9", BuyerID: id}, Local: path})
		if out.Result == nil || out.Result.Duplicate || out.Result.CommandID != id+"/buy" || len(out.Result.Records) != 1 {
			t.Fatalf("local=%v: outcome %+v", path, out)
		}
		n := eventCounts(t, c, id, run.GetRunID())
		got := want{n[enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED], n[enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED], n[enums.EVENT_TYPE_MARKER_RECORDED]}
		if got != w {
			t.Errorf("local=%v: %d workflow tasks, %d activity tasks, %d markers; want %+v", path, got.workflowTasks, got.activityTasks, got.markers, w)
		}
		recs, err := b.store.ReadPositions(b.ctx, eventstore.Position(out.Result.Records[0].Position))
		if err != nil {
			t.Fatal(err)
		}
		md := recs[0].Metadata
		if md["command_id"] != id+"/buy" || md["workflow_id"] != id || md["run_id"] != run.GetRunID() || md["activity_id"] == "" || md["correlation_id"] != id {
			t.Errorf("local=%v: metadata %v lacks the workflow's ids", path, md)
		}
	}
}

// A rejection reaches the workflow as a *DomainError after one attempt on
// both paths. Other errors arrive differently: the regular path wraps the
// *temporal.ApplicationError in a *temporal.ActivityError, the local path
// (on a real server) does not, so workflows match the application error
// with errors.As, which works on both (see the package documentation).
func TestLocalRejectionOnServer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sellOut(t)
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, nil)
	for _, local := range []bool{false, true} {
		out, _ := runBuy(t, c, client.StartWorkflowOptions{ID: testtemporal.UniqueID("reject"), TaskQueue: queue}, buyWorkflowName,
			buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "late"}, Local: local})
		if out.Rejected != "SoldOut" || !out.SoldOut {
			t.Errorf("local=%v: outcome %+v, want a SoldOut *DomainError", local, out)
		}
		out, _ = runBuy(t, c, client.StartWorkflowOptions{ID: testtemporal.UniqueID("bad"), TaskQueue: queue}, buyWorkflowName,
			buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "late"}, Local: local, Command: tickets.CmdScheduleConcert})
		if out.ErrType != activities.ErrTypeBadPayload || !out.NonRetryable || out.ActivityError == local {
			t.Errorf("local=%v: outcome %+v, want a non-retryable %s, wrapped in an ActivityError only on the regular path", local, out, activities.ErrTypeBadPayload)
		}
	}
	if n := b.outcomes.get("rejected"); n != 2 {
		t.Errorf("%d rejected dispatches, want 2 (one per path, none retried)", n)
	}
}

// A local dispatch that committed but whose completion was lost is retried
// in the worker; the retry answers from the stored result.
func TestLocalRetryAfterCommitAppendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var attempts atomic.Int64
	activities.SetAfterDispatch(b.acts, func(context.Context, *activities.Result) error {
		if attempts.Add(1) == 1 {
			return errors.New("completion lost in transit")
		}
		return nil
	})
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, nil)
	id := testtemporal.UniqueID("retry")
	out, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, buyWorkflowName,
		buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, Local: true})
	b.wantSoldOnce(t, out, true)
	if attempts.Load() != 2 {
		t.Fatalf("%d attempts, want 2", attempts.Load())
	}
	if n := eventCounts(t, c, id, run.GetRunID()); n[enums.EVENT_TYPE_TIMER_STARTED] != 0 || n[enums.EVENT_TYPE_MARKER_RECORDED] != 1 {
		t.Errorf("history %v: want the retry inside the worker (no timer) and one marker", n)
	}
}

// A local activity's result reaches the history only when its workflow
// task completes. If the task fails after the dispatch committed (a worker
// crash, a panic), the next task runs the local activity again, and the
// command id turns it into an answer from the stored result.
func TestLocalRerunAfterWorkflowTaskFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var panicked atomic.Bool
	crashOnce := func(ctx workflow.Context, in buyInput) (buyOutcome, error) {
		out, err := buyWorkflow(ctx, in)
		if !panicked.Swap(true) {
			panic("worker lost after the dispatch committed")
		}
		return out, err
	}
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, map[string]any{"test.CrashOnce": crashOnce})
	id := testtemporal.UniqueID("crash")
	out, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "test.CrashOnce",
		buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, Local: true})
	b.wantSoldOnce(t, out, true)
	if n := eventCounts(t, c, id, run.GetRunID()); n[enums.EVENT_TYPE_WORKFLOW_TASK_FAILED] != 1 || n[enums.EVENT_TYPE_MARKER_RECORDED] != 1 {
		t.Errorf("history %v: want one failed workflow task and one marker", n)
	}
}

// A reset starts a new run that executes the workflow's code again from
// the reset point; its command id is the same (derived from the workflow
// id, not the run id), so the new run's dispatch appends nothing.
func TestLocalResetAppendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, nil)
	id := testtemporal.UniqueID("reset")
	first, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, buyWorkflowName,
		buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, Local: true})
	b.wantSoldOnce(t, first, false)
	var firstTask int64
	it := c.GetWorkflowHistory(b.ctx, id, run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && firstTask == 0 {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			firstTask = ev.GetEventId()
		}
	}
	reset, err := c.ResetWorkflowExecution(b.ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 testtemporal.Namespace(),
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: id, RunId: run.GetRunID()},
		Reason:                    "test: run the command again",
		WorkflowTaskFinishEventId: firstTask,
		RequestId:                 testtemporal.UniqueID("reset"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var again buyOutcome
	if err := c.GetWorkflow(b.ctx, id, reset.GetRunId()).Get(b.ctx, &again); err != nil {
		t.Fatal(err)
	}
	b.wantSoldOnce(t, again, true)
	if again.Result.Records[0].Position != first.Result.Records[0].Position {
		t.Fatalf("after the reset: %+v, want the first run's records", again)
	}
}

// A store failure is retried with the retry policy's backoff: in the
// worker while the backoff fits in the workflow task timeout, through a
// timer in the history when it does not.
func TestLocalStoreFailureIsRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		failures     int64
		retryInitial time.Duration
		taskTimeout  time.Duration
		timers       bool
	}{
		{"backoff in the worker", 2, 50 * time.Millisecond, 0, false},
		{"backoff past the workflow task timeout", 1, 3 * time.Second, 2 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			flaky := &flakyStore{}
			b := setup(t, flaky)
			flaky.left.Store(tt.failures)
			flaky.calls.Store(0)
			c := testtemporal.Client(t)
			queue := buyWorker(t, b, c, nil)
			id := testtemporal.UniqueID("flaky")
			out, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue, WorkflowTaskTimeout: tt.taskTimeout}, buyWorkflowName,
				buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, Local: true, RetryInitial: tt.retryInitial})
			b.wantSoldOnce(t, out, false)
			// More attempts only if a workflow task timed out on a
			// loaded machine (the next task runs the dispatch again).
			if n := flaky.calls.Load(); n < tt.failures+1 || (n > tt.failures+1 && eventCounts(t, c, id, run.GetRunID())[enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT] == 0) {
				t.Errorf("%d attempts reached the append, want %d", n, tt.failures+1)
			}
			if n := eventCounts(t, c, id, run.GetRunID()); (n[enums.EVENT_TYPE_TIMER_STARTED] > 0) != tt.timers {
				t.Errorf("history %v: timers %v, want %v", n, n[enums.EVENT_TYPE_TIMER_STARTED] > 0, tt.timers)
			}
		})
	}
}

// A local dispatch slower than the workflow task timeout does not fail
// the task: the SDK completes it at 80% of the timeout and opens another
// while the dispatch runs on (one sale, more workflow tasks).
func TestLocalSlowDispatchExtendsWorkflowTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var attempts atomic.Int64
	activities.SetAfterDispatch(b.acts, func(ctx context.Context, _ *activities.Result) error {
		attempts.Add(1)
		select { // a slow dispatch, not synchronisation
		case <-time.After(2500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	c := testtemporal.Client(t)
	queue := buyWorker(t, b, c, nil)
	id := testtemporal.UniqueID("slow")
	out, run := runBuy(t, c, client.StartWorkflowOptions{ID: id, TaskQueue: queue, WorkflowTaskTimeout: 2 * time.Second}, buyWorkflowName,
		buyInput{Buy: tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, Local: true})
	n := eventCounts(t, c, id, run.GetRunID())
	b.wantSoldOnce(t, out, n[enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT] > 0)
	if n[enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED] < 2 {
		t.Errorf("history %v: want the workflow task extended (2 or more completed)", n)
	}
	// One attempt, unless a workflow task timed out anyway (a heartbeat
	// late on a loaded machine): then the next task ran the dispatch again
	// and the command id answered it.
	if timedOut := n[enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]; (attempts.Load() != 1) != (timedOut > 0) {
		t.Errorf("%d attempts, %d workflow tasks timed out", attempts.Load(), timedOut)
	}
}
