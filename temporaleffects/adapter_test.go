package temporaleffects_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/internal/testtemporal"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// echo returns its input: a workflow that completes in its first task.
func echo(_ workflow.Context, in map[string]any) (map[string]any, error) { return in, nil }

// Adapter.EagerStart starts a workflow with its first workflow task
// handed straight back to this process's worker: the start, the task's
// schedule and its start are written together (consecutive task ids in
// the history), where an ordinary start leaves the task to the task queue.
// A repeated start is still a no-op.
func TestAdapterEagerStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := testtemporal.Client(t)
	queue := testtemporal.Worker(t, c, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(echo, workflow.RegisterOptions{Name: "Echo"})
	})
	for _, eager := range []bool{false, true} {
		wfs := temporaleffects.Adapter{Client: c, TaskQueue: queue, EagerStart: eager}
		id := testtemporal.UniqueID("eager")
		req := temporaleffects.StartWorkflow{WorkflowID: id, WorkflowType: "Echo", Input: json.RawMessage(`{"id":"` + id + `"}`)}
		for range 2 {
			if err := wfs.StartWorkflow(ctx, req); err != nil {
				t.Fatalf("eager=%v: %v", eager, err)
			}
		}
		var out map[string]any
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, &out); err != nil || out["id"] != id {
			t.Fatalf("eager=%v: workflow returned %v, %v", eager, out, err)
		}
		var taskIDs []int64
		it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() && len(taskIDs) < 3 {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			taskIDs = append(taskIDs, ev.GetTaskId())
		}
		together := len(taskIDs) == 3 && taskIDs[1] == taskIDs[0]+1 && taskIDs[2] == taskIDs[1]+1
		if together != eager {
			t.Errorf("eager=%v: task ids of the first events %v", eager, taskIDs)
		}
	}
}

// What the adapter refuses, and how: a payload that is not JSON can never
// be sent (permanent); a signal to no workflow wraps ErrWorkflowNotFound.
func TestAdapterErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wfs := temporaleffects.Adapter{Client: testtemporal.Client(t), TaskQueue: testtemporal.UniqueID("none")}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"start input not JSON", func() error {
			return wfs.StartWorkflow(ctx, temporaleffects.StartWorkflow{WorkflowID: testtemporal.UniqueID("bad"), WorkflowType: "Echo", Input: json.RawMessage(`{`)})
		}, reactors.ErrPermanent},
		{"signal payload not JSON", func() error {
			return wfs.SignalWorkflow(ctx, temporaleffects.SignalWorkflow{WorkflowID: "x", Signal: "s", Payload: json.RawMessage(`{`)})
		}, reactors.ErrPermanent},
		{"signal to no workflow", func() error {
			return wfs.SignalWorkflow(ctx, temporaleffects.SignalWorkflow{WorkflowID: testtemporal.UniqueID("missing"), Signal: "s"})
		}, temporaleffects.ErrWorkflowNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// counted is a workflow input or signal carrying an integer JSON numbers
// as float64 would not hold exactly.
type counted struct {
	N int64 `json:"n"`
}

// echoSignal returns its input's number plus the first signal's.
func echoSignal(ctx workflow.Context, in counted) (int64, error) {
	var sig counted
	workflow.GetSignalChannel(ctx, "add").Receive(ctx, &sig)
	return in.N + sig.N, nil
}

// The workflow input and the signal payload reach the workflow digit for
// digit: integers above 2^53 included.
func TestAdapterKeepsLargeIntegers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := testtemporal.Client(t)
	queue := testtemporal.Worker(t, c, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(echoSignal, workflow.RegisterOptions{Name: "EchoSignal"})
	})
	const big = int64(1)<<53 + 1 // the first integer a float64 does not hold
	wfs := temporaleffects.Adapter{Client: c, TaskQueue: queue}
	id := testtemporal.UniqueID("big")
	if err := wfs.StartWorkflow(ctx, temporaleffects.StartWorkflow{WorkflowID: id, WorkflowType: "EchoSignal", Input: json.RawMessage(`{"n": 9007199254740993}`)}); err != nil {
		t.Fatal(err)
	}
	if err := wfs.SignalWorkflow(ctx, temporaleffects.SignalWorkflow{WorkflowID: id, Signal: "add", Payload: json.RawMessage(`{"n": 9007199254740993}`)}); err != nil {
		t.Fatal(err)
	}
	var got int64
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &got); err != nil || got != 2*big {
		t.Fatalf("workflow returned %d, %v; want %d", got, err, 2*big)
	}
}
