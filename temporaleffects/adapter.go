package temporaleffects

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/factos-go/factos/reactors"
)

var _ Workflows = Adapter{}

// Adapter adapts a Temporal client to Workflows, for the start and signal
// effects.
type Adapter struct {
	Client client.Client
	// TaskQueue of started workflows that name none.
	TaskQueue string
	// EagerStart asks the server to hand a started workflow's first
	// workflow task straight back to a worker in this process
	// (client.StartWorkflowOptions.EnableEagerStart), which saves that
	// task's trip through the task queue. It takes effect only when Client
	// is the client that a running worker of the workflow's task queue was
	// created with (as in factosfx) and that worker has a free slot;
	// otherwise the start is an ordinary one. The SDK marks it
	// experimental, and an eagerly started workflow may run on a worker of
	// another build than worker versioning would choose. Default: false.
	EagerStart bool
}

// StartWorkflow starts a workflow, idempotent by workflow id: if a
// workflow with the id is running or has run (the id is never reused), the
// start counts as done.
func (w Adapter) StartWorkflow(ctx context.Context, req StartWorkflow) error {
	queue := req.TaskQueue
	if queue == "" {
		queue = w.TaskQueue
	}
	var args []any
	if len(req.Input) > 0 {
		// Decode to a generic value so the data converter sends JSON the
		// workflow can decode into its own type (a json.RawMessage would
		// travel as bytes).
		v, err := decodeJSON(req.Input)
		if err != nil {
			return reactors.Permanent(fmt.Errorf("workflow input is not JSON: %w", err))
		}
		args = append(args, v)
	}
	_, err := w.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    req.WorkflowID,
		TaskQueue:             queue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		EnableEagerStart:      w.EagerStart,
	}, req.WorkflowType, args...)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	return err
}

// SignalWorkflow signals a running workflow.
func (w Adapter) SignalWorkflow(ctx context.Context, req SignalWorkflow) error {
	var arg any
	if len(req.Payload) > 0 {
		var err error
		if arg, err = decodeJSON(req.Payload); err != nil {
			return reactors.Permanent(fmt.Errorf("signal payload is not JSON: %w", err))
		}
	}
	err := w.Client.SignalWorkflow(ctx, req.WorkflowID, req.RunID, req.Signal, arg)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("signal %s to %s: %w", req.Signal, req.WorkflowID, ErrWorkflowNotFound)
	}
	return err
}

// decodeJSON decodes one JSON value to a generic one whose numbers stay
// json.Number, which the data converter writes back digit for digit: as
// float64 an integer above 2^53 would reach the workflow changed.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}
