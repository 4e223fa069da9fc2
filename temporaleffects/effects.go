package temporaleffects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
)

// Kinds of the effects that start or signal Temporal workflows. They take
// the Temporal client through the Workflows interface; Adapter is the one
// for a Temporal SDK client.
const (
	// EffectStartWorkflow starts a workflow, idempotent by workflow id.
	EffectStartWorkflow = "temporal.start_workflow"
	// EffectSignalWorkflow signals a running workflow.
	EffectSignalWorkflow = "temporal.signal_workflow"
)

// Workflows is the part of a Temporal client the built-in effects use.
type Workflows interface {
	// StartWorkflow starts a workflow. If a workflow with the id is already
	// running or completed it must return nil: starting is idempotent by id.
	StartWorkflow(ctx context.Context, req StartWorkflow) error
	// SignalWorkflow signals a workflow. It must return an error wrapping
	// ErrWorkflowNotFound if no such workflow runs.
	SignalWorkflow(ctx context.Context, req SignalWorkflow) error
}

// ErrWorkflowNotFound: the workflow to signal does not exist or has ended.
// The signal effect gives up at once.
var ErrWorkflowNotFound = errors.New("workflow not found")

// StartWorkflow are the args of EffectStartWorkflow.
type StartWorkflow struct {
	// WorkflowID is the idempotency key of the start. Required.
	WorkflowID string `json:"workflow_id"`
	// WorkflowType names the registered workflow. Required.
	WorkflowType string `json:"workflow_type"`
	// TaskQueue. Default: the adapter's.
	TaskQueue string `json:"task_queue,omitempty"`
	// Input is the workflow's single argument, as JSON.
	Input json.RawMessage `json:"input,omitempty"`
}

// SignalWorkflow are the args of EffectSignalWorkflow.
type SignalWorkflow struct {
	WorkflowID string `json:"workflow_id"`
	// RunID, if set, targets one run. Default: the current run.
	RunID  string `json:"run_id,omitempty"`
	Signal string `json:"signal"`
	// Payload is the signal's argument, as JSON.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// StartWorkflowEffect plans the start of a workflow, for a reactor to return.
func StartWorkflowEffect(key string, req StartWorkflow) eventstore.PlannedEffect {
	return eventstore.PlannedEffect{Kind: EffectStartWorkflow, Key: key, Args: req}
}

// SignalWorkflowEffect plans a signal to a workflow, for a reactor to return.
func SignalWorkflowEffect(key string, req SignalWorkflow) eventstore.PlannedEffect {
	return eventstore.PlannedEffect{Kind: EffectSignalWorkflow, Key: key, Args: req}
}

// Opts tune the effects Add registers.
type Opts struct {
	// MaxAttempts of each effect. Default: reactors.DefaultEffectMaxAttempts.
	MaxAttempts int
}

// Add registers with r the effects that start and signal workflows
// through wf.
func Add(r *reactors.Registry, wf Workflows, opts *Opts) error {
	if wf == nil {
		return errors.New("temporaleffects: nil Workflows")
	}
	if opts == nil {
		opts = &Opts{}
	}
	err := reactors.AddEffect(r, reactors.EffectHandler[StartWorkflow]{
		Kind: EffectStartWorkflow, MaxAttempts: opts.MaxAttempts,
		Handle: func(ctx context.Context, e reactors.Effect[StartWorkflow]) error {
			if e.Args.WorkflowID == "" || e.Args.WorkflowType == "" {
				return reactors.Permanent(fmt.Errorf("start workflow effect %s: workflow id and type are required", e.Key))
			}
			return wf.StartWorkflow(ctx, e.Args)
		},
	})
	if err != nil {
		return err
	}
	return reactors.AddEffect(r, reactors.EffectHandler[SignalWorkflow]{
		Kind: EffectSignalWorkflow, MaxAttempts: opts.MaxAttempts,
		Handle: func(ctx context.Context, e reactors.Effect[SignalWorkflow]) error {
			if e.Args.WorkflowID == "" || e.Args.Signal == "" {
				return reactors.Permanent(fmt.Errorf("signal workflow effect %s: workflow id and signal are required", e.Key))
			}
			err := wf.SignalWorkflow(ctx, e.Args)
			if errors.Is(err, ErrWorkflowNotFound) {
				return reactors.Permanent(err)
			}
			return err
		},
	})
}
