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
