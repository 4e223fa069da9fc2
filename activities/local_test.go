package activities_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// The local path (CommandOptions.Local) keeps every guarantee of the
// regular one. These tests run the same cases through both paths in the
// SDK's test environment; local_server_test.go runs the local path's own
// failure modes against a real server.

// buyInput is the input of buyWorkflow.
type buyInput struct {
	Buy   tickets.BuyTicket `json:"buy"`
	Local bool              `json:"local"`
	// Command overrides the command name (to send a payload the command
	// refuses). Default: tickets.CmdBuyTicket.
	Command string `json:"command,omitempty"`
	// RetryInitial, if set, replaces the default retry policy's initial
	// interval.
	RetryInitial time.Duration `json:"retry_initial,omitempty"`
}

// buyOutcome is what the workflow saw: the result, or how the error
// arrived.
type buyOutcome struct {
	Result *activities.Result `json:"result,omitempty"`
	// Rejected names the *DomainError; SoldOut is errors.Is(err,
	// tickets.ErrSoldOut).
	Rejected string `json:"rejected,omitempty"`
	SoldOut  bool   `json:"sold_out,omitempty"`
	// ErrType, NonRetryable: the *temporal.ApplicationError of any other
	// failure. ActivityError: whether a *temporal.ActivityError wraps it.
	ErrType       string `json:"err_type,omitempty"`
	NonRetryable  bool   `json:"non_retryable,omitempty"`
	ActivityError bool   `json:"activity_error,omitempty"`
	Err           string `json:"err,omitempty"`
}

const buyWorkflowName = "test.Buy"

// buyWorkflow buys a ticket through the path its input names, with the
// command id CommandIDFor(ctx, "buy"), and reports what came back.
func buyWorkflow(ctx workflow.Context, in buyInput) (buyOutcome, error) {
	opts := &activities.CommandOptions{CommandID: activities.CommandIDFor(ctx, "buy"), DomainErrors: tickets.DomainErrors, Local: in.Local}
	if in.RetryInitial > 0 {
		if in.Local {
			lao := activities.DefaultLocalActivityOptions()
			lao.RetryPolicy.InitialInterval = in.RetryInitial
			opts.LocalActivityOptions = &lao
		} else {
			ao := activities.DefaultActivityOptions()
			ao.RetryPolicy.InitialInterval = in.RetryInitial
			opts.ActivityOptions = &ao
		}
	}
	cmd := tickets.CmdBuyTicket
	if in.Command != "" {
		cmd = in.Command
	}
	res, err := activities.ExecuteCommand(ctx, cmd, in.Buy, opts)
	return outcomeOf(res, err), nil
}

func outcomeOf(res *activities.Result, err error) buyOutcome {
	if err == nil {
		return buyOutcome{Result: res}
	}
	out := buyOutcome{Err: err.Error()}
	var de *activities.DomainError
	if errors.As(err, &de) {
		out.Rejected, out.SoldOut = de.Name, errors.Is(err, tickets.ErrSoldOut)
		return out
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		out.ErrType, out.NonRetryable = app.Type(), app.NonRetryable()
	}
	var ae *temporal.ActivityError
	out.ActivityError = errors.As(err, &ae)
	return out
}

// flakyStore fails the appends of the dispatch transaction while failures
// are left, as a database that is briefly unavailable would: the
// transaction rolls back and nothing is stored.
type flakyStore struct {
	left, calls atomic.Int64
}

func (f *flakyStore) AfterAppend(context.Context, pgx.Tx, []eventstore.RawRecord) error {
	f.calls.Add(1)
	if f.left.Add(-1) >= 0 {
		return errors.New("connection reset by peer")
	}
	return nil
}

// TestBothPathsInTestSuite runs every case through the regular and the
// local activity in the SDK's workflow test environment: the same result,
// the same error mapping, the same retries, the same stored events.
func TestBothPathsInTestSuite(t *testing.T) {
	t.Parallel()
	ada := tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}
	cases := []struct {
		name string
		// before runs before the workflow; failures arms the flaky store.
		before   func(t *testing.T, b *bundle)
		failures int64
		in       buyInput
		// runs is how often the workflow runs with the same workflow id
		// (so the same command id).
		runs  int
		check func(t *testing.T, b *bundle, f *flakyStore, outs []buyOutcome)
	}{
		{
			name: "committed once for one command id",
			in:   buyInput{Buy: ada},
			runs: 2,
			check: func(t *testing.T, b *bundle, _ *flakyStore, outs []buyOutcome) {
				first, again := outs[0].Result, outs[1].Result
				if first == nil || first.Duplicate || len(first.Records) != 1 || first.Records[0].Type != tickets.TypeTicketSold {
					t.Fatalf("first run: %+v", outs[0])
				}
				if again == nil || !again.Duplicate || again.Records[0].Position != first.Records[0].Position {
					t.Fatalf("second run with the same command id: %+v, want the first run's records", outs[1])
				}
				if n := b.soldCount(t, "c1"); n != 1 {
					t.Errorf("%d tickets stored, want 1", n)
				}
			},
		},
		{
			name: "domain rejection after one attempt",
			before: func(t *testing.T, b *bundle) {
				b.sellOut(t)
			},
			in:   buyInput{Buy: ada},
			runs: 1,
			check: func(t *testing.T, b *bundle, _ *flakyStore, outs []buyOutcome) {
				if o := outs[0]; o.Rejected != "SoldOut" || !o.SoldOut {
					t.Fatalf("outcome %+v, want a SoldOut *DomainError", o)
				}
				if n := b.outcomes.get("rejected"); n != 1 {
					t.Errorf("%d rejected dispatches, want 1 (not retried)", n)
				}
			},
		},
		{
			name: "bad payload not retried",
			in:   buyInput{Buy: ada, Command: tickets.CmdScheduleConcert},
			runs: 1,
			check: func(t *testing.T, b *bundle, _ *flakyStore, outs []buyOutcome) {
				if o := outs[0]; o.ErrType != activities.ErrTypeBadPayload || !o.NonRetryable {
					t.Fatalf("outcome %+v, want a non-retryable %s", o, activities.ErrTypeBadPayload)
				}
			},
		},
		{
			name:     "store failure retried until it passes",
			failures: 2,
			in:       buyInput{Buy: ada, RetryInitial: 10 * time.Millisecond},
			runs:     1,
			check: func(t *testing.T, b *bundle, f *flakyStore, outs []buyOutcome) {
				if o := outs[0]; o.Result == nil || o.Result.Duplicate {
					t.Fatalf("outcome %+v, want the ticket sold", o)
				}
				if n := f.calls.Load(); n != 3 {
					t.Errorf("%d attempts reached the append, want 3 (two failures, then the commit)", n)
				}
				if n := b.soldCount(t, "c1"); n != 1 {
					t.Errorf("%d tickets stored, want 1", n)
				}
			},
		},
	}
	for _, tc := range cases {
		for _, local := range []bool{false, true} {
			path := "regular"
			if local {
				path = "local"
			}
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				t.Parallel()
				flaky := &flakyStore{}
				b := setup(t, flaky)
				if tc.before != nil {
					tc.before(t, b)
				}
				flaky.left.Store(tc.failures)
				flaky.calls.Store(0)
				in := tc.in
				in.Local = local
				outs := make([]buyOutcome, tc.runs)
				var regular, locals atomic.Int64 // activity attempts started on each path
				for i := range tc.runs {
					env := quietSuite().NewTestWorkflowEnvironment()
					env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { regular.Add(1) })
					env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { locals.Add(1) })
					b.acts.Register(env)
					env.RegisterWorkflowWithOptions(buyWorkflow, workflow.RegisterOptions{Name: buyWorkflowName})
					env.SetStartWorkflowOptions(startOpts("buy-" + path))
					env.ExecuteWorkflow(buyWorkflowName, in)
					if err := env.GetWorkflowResult(&outs[i]); err != nil {
						t.Fatal(err)
					}
				}
				if (local && (locals.Load() == 0 || regular.Load() != 0)) || (!local && (regular.Load() == 0 || locals.Load() != 0)) {
					t.Errorf("%d regular and %d local activity attempts on the %s path", regular.Load(), locals.Load(), path)
				}
				tc.check(t, b, flaky, outs)
			})
		}
	}
}

// Options of the path not taken are refused, not silently ignored; so are
// a local command without a command id (NewCommandID's record would be
// lost with a failed workflow task, and the command run twice) and a
// command id that is not UTF-8 (the data converter would make it another).
func TestCommandOptionsOfTheOtherPath(t *testing.T) {
	t.Parallel()
	ao, lao := activities.DefaultActivityOptions(), activities.DefaultLocalActivityOptions()
	for name, opts := range map[string]*activities.CommandOptions{
		"field ActivityOptions":      {Local: true, CommandID: "c", ActivityOptions: &ao},
		"field LocalActivityOptions": {LocalActivityOptions: &lao},
		"Local needs a CommandID":    {Local: true},
		"not valid UTF-8":            {CommandID: "order-\xfe"},
	} {
		env := quietSuite().NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
			_, err := activities.ExecuteCommand(ctx, tickets.CmdBuyTicket, tickets.BuyTicket{}, opts)
			return err
		}, workflow.RegisterOptions{Name: "options"})
		env.ExecuteWorkflow("options")
		if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, want one saying %q", err, name)
		}
	}
}
