package activities

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

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
		RetryPolicy:            defaultRetryPolicy(),
	}
}

// DefaultLocalActivityOptions are the options ExecuteCommand uses with
// CommandOptions.Local unless told otherwise. An attempt gets 5s, well
// inside the default workflow task timeout (10s; the SDK extends a
// workflow task that a local activity keeps open past 80% of it), and the
// retries are those of DefaultActivityOptions: backoff from 200ms to 15s
// for up to 10 minutes. Backoffs up to the workflow task timeout are slept
// in the worker; longer ones become a timer in the workflow's history.
func DefaultLocalActivityOptions() workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout:    5 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy:            defaultRetryPolicy(),
	}
}

// defaultRetryPolicy retries a dispatch with backoff; the activity marks
// what would fail again as non-retryable.
func defaultRetryPolicy() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    15 * time.Second,
	}
}

// CommandOptions tune ExecuteCommand. A nil *CommandOptions is valid.
type CommandOptions struct {
	// CommandID makes the command exactly-once. Give CommandIDFor(ctx,
	// key): it survives replays, retries, lost workflow tasks and resets.
	// Required with Local. Default (regular activity only): NewCommandID,
	// which a reset to before the command does not keep.
	CommandID string
	// Local dispatches through a local activity (DispatchLocalActivity)
	// run by the workflow's own worker instead of a regular activity
	// scheduled through the server: fewer hand-offs, so lower latency and
	// more commands per second, with the same exactly-once guarantee.
	// See "Two paths" in the package documentation for the trade-offs.
	// Default: false.
	Local bool
	// ActivityOptions of the regular activity; only without Local.
	// Default: DefaultActivityOptions.
	ActivityOptions *workflow.ActivityOptions
	// LocalActivityOptions of the local activity; only with Local.
	// Default: DefaultLocalActivityOptions.
	LocalActivityOptions *workflow.LocalActivityOptions
	// DomainErrors maps rejection names back to error values, so that
	// errors.Is(err, ErrSoldOut) works in the workflow. Use the same map as
	// the registry's Config.DomainErrors. Default: none.
	DomainErrors map[string]error
}

// validate refuses options of the path not taken: they would be ignored
// silently otherwise.
func (o *CommandOptions) validate() error {
	switch {
	case o.Local && o.ActivityOptions != nil:
		return errors.New("invalid CommandOptions: field ActivityOptions is set with Local (use LocalActivityOptions)")
	case !o.Local && o.LocalActivityOptions != nil:
		return errors.New("invalid CommandOptions: field LocalActivityOptions is set without Local")
	case o.Local && o.CommandID == "":
		// NewCommandID is recorded in the history when the workflow task
		// completes, and a local activity runs inside that task: a task
		// lost after the dispatch committed would draw another id, and
		// the command would run twice.
		return errors.New("invalid CommandOptions: Local needs a CommandID that a lost workflow task and a reset keep: use CommandIDFor(ctx, key)")
	case o.CommandID != "" && !utf8.ValidString(o.CommandID):
		// The data converter would replace the invalid bytes, and two
		// distinct ids would become one.
		return errors.New("invalid CommandOptions: field CommandID is not valid UTF-8")
	}
	return nil
}

// NewCommandID returns a new command id, recorded in the workflow's
// history (a side effect): a replay of the workflow gets the same id, and
// so does the regular activity, scheduled by the same workflow task that
// records it. It is not kept by a reset to a point before it, which runs
// the code again and draws a new id, nor by a workflow task lost before it
// completed, which a local activity runs inside (ExecuteCommand refuses
// Local without a CommandID). CommandIDFor is kept by all of them. (The
// run id and activity id are not safe keys: a reset changes the run id.)
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
// the dispatch activity, regular or local (CommandOptions.Local), and waits
// for its result. A domain rejection comes back as a *DomainError (after
// exactly one attempt); other failures as the activity's error once its
// retries are spent.
func ExecuteCommand(ctx workflow.Context, name string, cmd any, opts *CommandOptions) (*Result, error) {
	if opts == nil {
		opts = &CommandOptions{}
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("error encoding command %s: %w", name, err)
	}
	id := opts.CommandID
	if id == "" {
		id = NewCommandID(ctx)
	}
	req := Request{Command: name, CommandID: id, Payload: payload}
	var f workflow.Future
	if opts.Local {
		lao := DefaultLocalActivityOptions()
		if opts.LocalActivityOptions != nil {
			lao = *opts.LocalActivityOptions
		}
		f = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, lao), DispatchLocalActivity, req)
	} else {
		ao := DefaultActivityOptions()
		if opts.ActivityOptions != nil {
			ao = *opts.ActivityOptions
		}
		f = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), DispatchActivity, req)
	}
	var res Result
	if err := f.Get(ctx, &res); err != nil {
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
