package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/factos-go/factos/eventstore"
)

// Registered names of the dispatch activity: one function under two
// names, so that a workflow's history, the SDK's metrics and the worker's
// logs tell the two paths apart.
const (
	// DispatchActivity is the regular activity: scheduled through the
	// Temporal server, run by any worker polling the task queue.
	DispatchActivity = "factos.Dispatch"
	// DispatchLocalActivity is the local activity (CommandOptions.Local):
	// run by the worker that runs the workflow, its result recorded as a
	// marker when the workflow task completes.
	DispatchLocalActivity = "factos.DispatchLocal"
)

// Application error types the activity returns. Only the top-level error
// of an activity decides whether Temporal retries it, so the activity
// returns *temporal.ApplicationError values themselves, never wrapped.
const (
	// ErrTypeRejected is the type of a rejection by an unnamed domain
	// error. Named domain errors use their name (see Config.DomainErrors).
	// Not retryable.
	ErrTypeRejected = "factos.Rejected"
	// ErrTypeConflict: concurrency conflicts outlasted the store's retries.
	// Retryable.
	ErrTypeConflict = "factos.Conflict"
	// ErrTypeStore: the database failed. Retryable.
	ErrTypeStore = "factos.StoreFailure"
	// ErrTypeInvalidInput: an event or option failed validation. Not
	// retryable.
	ErrTypeInvalidInput = "factos.InvalidInput"
	// ErrTypeCommandIDReused: the command id was first used for another
	// command (another name, payload or stream); nothing was appended. Not
	// retryable: the caller must derive ids that name one command each.
	ErrTypeCommandIDReused = "factos.CommandIDReused"
	// ErrTypeCodec: a stored event could not be decoded or a decided one
	// encoded. Not retryable: it needs a code or data fix.
	ErrTypeCodec = "factos.Codec"
	// ErrTypeFutureVersion: the context holds an event written at a version
	// newer than this worker's codec knows, by a newer release. Retryable:
	// during a rolling deploy a worker of that release takes the retry.
	ErrTypeFutureVersion = "factos.FutureVersion"
	// ErrTypeUnknownCommand: no command of that name is registered. Not
	// retryable.
	ErrTypeUnknownCommand = "factos.UnknownCommand"
	// ErrTypeBadPayload: the payload is not valid JSON for the command. Not
	// retryable.
	ErrTypeBadPayload = "factos.BadPayload"
)

// Request is the dispatch activity's input.
type Request struct {
	// Command names a registered command.
	Command string `json:"command"`
	// CommandID makes the dispatch exactly-once: a retried activity with
	// the same id appends nothing and returns the first result. Required.
	CommandID string `json:"command_id"`
	// Payload is the command as JSON.
	Payload json.RawMessage `json:"payload"`
}

// Rejection are the details of a domain rejection.
type Rejection struct {
	Command string `json:"command"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// Activities holds the dispatch activity.
type Activities struct {
	reg *Registry

	// afterDispatch, when set by tests, runs after a dispatch committed and
	// before the activity returns, to simulate a completion lost in transit.
	afterDispatch func(ctx context.Context, res *Result) error
}

// Activities returns the registry's activities.
func (r *Registry) Activities() *Activities { return &Activities{reg: r} }

// Register registers the dispatch activity with a Temporal worker under
// both names. A local activity runs only on the worker that runs its
// workflow: register the activities on every worker that registers
// workflows using CommandOptions.Local.
func (a *Activities) Register(w worker.ActivityRegistry) {
	w.RegisterActivityWithOptions(a.Dispatch, activity.RegisterOptions{Name: DispatchActivity})
	w.RegisterActivityWithOptions(a.Dispatch, activity.RegisterOptions{Name: DispatchLocalActivity})
}

// Dispatch runs a registered command through the event store, once per
// command id, and records the workflow's ids on the appended events.
func (a *Activities) Dispatch(ctx context.Context, req Request) (*Result, error) {
	if req.CommandID == "" {
		return nil, temporal.NewNonRetryableApplicationError("command id required: pass a deterministic id (activities.NewCommandID)", ErrTypeInvalidInput, nil)
	}
	md := eventstore.Metadata{"command": req.Command, "command_id": req.CommandID, "causation_id": req.CommandID}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		md["workflow_id"] = info.WorkflowExecution.ID
		md["run_id"] = info.WorkflowExecution.RunID
		md["activity_id"] = info.ActivityID
		md["correlation_id"] = info.WorkflowExecution.ID
	}
	res, err := a.reg.Dispatch(ctx, req.Command, req.CommandID, req.Payload, md)
	if err != nil {
		return nil, a.reg.toTemporal(req.Command, err)
	}
	if a.afterDispatch != nil {
		if err := a.afterDispatch(ctx, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// toTemporal maps a dispatch error to the application error Temporal acts
// on. Rejections, bad input and codec failures would fail again: not
// retryable. Conflicts, store failures and events from a newer release may
// pass: retryable. Only rejections are benign (expected; not logged or
// counted as failures).
func (r *Registry) toTemporal(cmd string, err error) error {
	var (
		rej     *eventstore.RejectedError
		unknown *UnknownCommandError
		payload *PayloadError
	)
	switch {
	case errors.As(err, &rej):
		// Benign: a rejection is an outcome the domain expects (sold
		// out), so the SDK logs it at debug level and counts no failure,
		// where a real error stays an error.
		name := r.errors.Name(rej.Err)
		return temporal.NewApplicationErrorWithOptions(rej.Err.Error(), name, temporal.ApplicationErrorOptions{
			NonRetryable: true,
			Category:     temporal.ApplicationErrorCategoryBenign,
			Details:      []any{Rejection{Command: cmd, Name: name, Message: rej.Err.Error()}},
		})
	case errors.As(err, &unknown):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUnknownCommand, nil)
	case errors.As(err, &payload):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadPayload, nil)
	case errors.Is(err, eventstore.ErrCommandIDReused):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeCommandIDReused, nil)
	case errors.Is(err, eventstore.ErrInvalidInput):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	case errors.Is(err, eventstore.ErrFutureVersion):
		return temporal.NewApplicationError(err.Error(), ErrTypeFutureVersion)
	case errors.Is(err, eventstore.ErrDecode), errors.Is(err, eventstore.ErrEncode):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeCodec, nil)
	case errors.Is(err, eventstore.ErrConflict):
		return temporal.NewApplicationError(err.Error(), ErrTypeConflict)
	}
	return temporal.NewApplicationError(fmt.Sprintf("command %q: %v", cmd, err), ErrTypeStore)
}
