package activities

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DefaultActivityOptions are the options ExecuteCommand uses unless told
// otherwise: a dispatch is short, so a 30s attempt; transient failures
// (conflicts, a database restart) are retried with backoff for up to 10
// minutes; rejections, bad input and codec failures are not retried at
// all, because the activity marks them non-retryable.
func DefaultActivityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    15 * time.Second,
		},
	}
}

// CommandOptions tune ExecuteCommand. A nil *CommandOptions is valid.
type CommandOptions struct {
	// CommandID makes the command exactly-once. Default: NewCommandID.
	CommandID string
	// ActivityOptions. Default: DefaultActivityOptions.
	ActivityOptions *workflow.ActivityOptions
	// DomainErrors maps rejection names back to error values, so that
	// errors.Is(err, ErrSoldOut) works in the workflow. Use the same map as
	// the registry's Config.DomainErrors. Default: none.
	DomainErrors map[string]error
}

// NewCommandID returns a new command id, recorded in the workflow's
// history: a replay of the workflow gets the same id, so a command executed
// again after a worker crash is recognized as the same command. (The run id
// and activity id are not safe keys: a workflow reset changes the run id.)
func NewCommandID(ctx workflow.Context) string {
	var id string
	enc := workflow.SideEffect(ctx, func(workflow.Context) any {
		return workflow.GetInfo(ctx).WorkflowExecution.ID + "/" + uuid.NewString()
	})
	if err := enc.Get(&id); err != nil {
		panic(fmt.Sprintf("activities: decoding a recorded command id: %v", err)) // only on a corrupt history
	}
	return id
}

// CommandIDFor derives a command id from the workflow id and a key the
// workflow chooses (such as "reserve" or "confirm"): stable across replays,
// retries and resets, and unique as long as the key is unique within the
// workflow.
func CommandIDFor(ctx workflow.Context, key string) string {
	return workflow.GetInfo(ctx).WorkflowExecution.ID + "/" + key
}

// DomainError is a command's rejection as the workflow sees it. errors.Is
// matches the domain error value registered under Name.
type DomainError struct {
	Command string
	Name    string
	Message string
	err     error
}

func (e *DomainError) Error() string {
	return fmt.Sprintf("command %s rejected: %s", e.Command, e.Message)
}

// Unwrap returns the registered domain error, if any.
func (e *DomainError) Unwrap() error { return e.err }

// ExecuteCommand dispatches a registered command from a workflow through
// the dispatch activity and waits for its result. A domain rejection comes
// back as a *DomainError (after exactly one attempt); other failures as
// the activity's error once its retries are spent.
func ExecuteCommand(ctx workflow.Context, name string, cmd any, opts *CommandOptions) (*Result, error) {
	if opts == nil {
		opts = &CommandOptions{}
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("error encoding command %s: %w", name, err)
	}
	id := opts.CommandID
	if id == "" {
		id = NewCommandID(ctx)
	}
	ao := DefaultActivityOptions()
	if opts.ActivityOptions != nil {
		ao = *opts.ActivityOptions
	}
	ctx = workflow.WithActivityOptions(ctx, ao)
	var res Result
	err = workflow.ExecuteActivity(ctx, DispatchActivity, Request{Command: name, CommandID: id, Payload: payload}).Get(ctx, &res)
	if err != nil {
		return nil, asDomainError(err, name, opts.DomainErrors)
	}
	return &res, nil
}

// asDomainError turns a rejection into a *DomainError and leaves every
// other error alone.
func asDomainError(err error, cmd string, named map[string]error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !app.HasDetails() {
		return err
	}
	var rej Rejection
	if app.Details(&rej) != nil || rej.Name != app.Type() {
		return err
	}
	return &DomainError{Command: cmd, Name: rej.Name, Message: rej.Message, err: named[rej.Name]}
}
