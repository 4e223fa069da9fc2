package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
)

type bundle struct {
	ctx   context.Context
	store *eventstore.Store
	reg   *activities.Registry
	acts  *activities.Activities
	// outcomes counts the store's dispatches by outcome from the end of
	// setup on: one per activity attempt that reached the store.
	outcomes *outcomes
}

func setup(t *testing.T, hooks ...eventstore.Hook) *bundle {
	t.Helper()
	pool := testdb.New(t)
	obs := &outcomes{}
	store, err := eventstore.New(pool, &eventstore.Config{Hooks: hooks, Observer: obs.observe})
	if err != nil {
		t.Fatal(err)
	}
	reg := activities.NewRegistry(store, &activities.Config{DomainErrors: tickets.DomainErrors})
	if err := tickets.RegisterCommands(reg, tickets.NewCodec()); err != nil {
		t.Fatal(err)
	}
	b := &bundle{ctx: context.Background(), store: store, reg: reg, acts: reg.Activities(), outcomes: obs}
	if _, err := reg.Dispatch(b.ctx, tickets.CmdScheduleConcert, "schedule-c1", []byte(`{"concert_id":"c1","capacity":1}`), nil); err != nil {
		t.Fatal(err)
	}
	obs.reset()
	return b
}

// schedule schedules a concert of capacity seats.
func (b *bundle) schedule(t *testing.T, concert string, capacity int) {
	t.Helper()
	b.dispatch(t, tickets.CmdScheduleConcert, "schedule-"+concert, tickets.ScheduleConcert{ConcertID: concert, Capacity: capacity})
}

// sellOut sells concert c1's one seat, outside Temporal.
func (b *bundle) sellOut(t *testing.T) {
	t.Helper()
	b.dispatch(t, tickets.CmdBuyTicket, "first", tickets.BuyTicket{ConcertID: "c1", BuyerID: "first"})
	b.outcomes.reset()
}

// dispatch runs a command directly, failing the test on an error.
func (b *bundle) dispatch(t *testing.T, cmd, id string, v any) {
	t.Helper()
	if _, err := b.reg.Dispatch(b.ctx, cmd, id, payload(v), nil); err != nil {
		t.Fatal(err)
	}
}

// outcomes counts dispatches by DispatchInfo.Outcome.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) observe(info eventstore.DispatchInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[info.Outcome]++
}

func (o *outcomes) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n = nil
}

func (o *outcomes) get(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[outcome]
}

func payload(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// The activity's error mapping, seen exactly as Temporal sees it.
func TestDispatchActivityMapsErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := quietSuite().NewTestActivityEnvironment()
	b.acts.Register(env)

	val, err := env.ExecuteActivity(activities.DispatchActivity, activities.Request{
		Command: tickets.CmdBuyTicket, CommandID: "buy-1", Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"})})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.Result
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.CommandID != "buy-1" || res.Duplicate || len(res.Records) != 1 || res.Records[0].Type != tickets.TypeTicketSold || res.Stream != "buyer-ada" || res.Revision != 1 {
		t.Fatalf("result %+v", res)
	}
	recs, err := b.store.ReadPositions(b.ctx, eventstore.Position(res.Records[0].Position))
	if err != nil {
		t.Fatal(err)
	}
	md := recs[0].Metadata
	if md["command_id"] != "buy-1" || md["command"] != tickets.CmdBuyTicket || md["workflow_id"] == "" || md["activity_id"] == "" || md["correlation_id"] != md["workflow_id"] {
		t.Errorf("metadata %v lacks the correlation and causation ids", md)
	}

	cases := []struct {
		name      string
		req       activities.Request
		errType   string
		retryable bool
		benign    bool // an expected outcome, not logged as an error
	}{
		{"domain rejection", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "buy-2", Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "bob"})}, "SoldOut", false, true},
		{"unnamed domain error", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "buy-3", Payload: payload(tickets.BuyTicket{ConcertID: "", BuyerID: "bob"})}, "InvalidCommand", false, true},
		{"unknown command", activities.Request{Command: "tickets.Nope", CommandID: "x-1", Payload: payload(1)}, activities.ErrTypeUnknownCommand, false, false},
		{"unknown field", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "x-2", Payload: json.RawMessage(`{"concert_id":"c1","buyer":"typo"}`)}, activities.ErrTypeBadPayload, false, false},
		{"wrong type", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "x-3", Payload: json.RawMessage(`{"concert_id":7}`)}, activities.ErrTypeBadPayload, false, false},
		{"empty payload", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "x-5"}, activities.ErrTypeBadPayload, false, false},
		{"missing command id", activities.Request{Command: tickets.CmdBuyTicket, Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "z"})}, activities.ErrTypeInvalidInput, false, false},
		{"command id reused with another payload", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "buy-1", Payload: payload(tickets.BuyTicket{ConcertID: "c2", BuyerID: "ada"})}, activities.ErrTypeCommandIDReused, false, false},
		{"command id reused by another command", activities.Request{Command: tickets.CmdScheduleConcert, CommandID: "buy-1", Payload: payload(tickets.ScheduleConcert{ConcertID: "c9", Capacity: 1})}, activities.ErrTypeCommandIDReused, false, false},
		{"invalid tag from input", activities.Request{Command: tickets.CmdBuyTicket, CommandID: "x-6", Payload: payload(tickets.BuyTicket{ConcertID: "c\x001", BuyerID: "z"})}, activities.ErrTypeInvalidInput, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.ExecuteActivity(activities.DispatchActivity, tc.req)
			var app *temporal.ApplicationError
			if !errors.As(err, &app) {
				t.Fatalf("err = %v, want an application error", err)
			}
			if app.Type() != tc.errType || app.NonRetryable() == tc.retryable {
				t.Errorf("type %q retryable %v, want %q retryable %v (%v)", app.Type(), !app.NonRetryable(), tc.errType, tc.retryable, err)
			}
			if benign := app.Category() == temporal.ApplicationErrorCategoryBenign; benign != tc.benign {
				t.Errorf("benign %v, want %v (%v)", benign, tc.benign, err)
			}
		})
	}

	// Invalid JSON cannot cross Temporal's data converter; the registry
	// refuses it on the direct path too.
	for _, bad := range []string{`{"concert_id":"c1","buyer_id":"z"} {}`, `{"concert_id":"c1",`, `null x`} {
		_, err := b.reg.Dispatch(b.ctx, tickets.CmdBuyTicket, "x-9", []byte(bad), nil)
		var perr *activities.PayloadError
		if !errors.As(err, &perr) {
			t.Errorf("payload %q: err = %v, want *PayloadError", bad, err)
		}
	}

	// Rejection details carry the domain error.
	_, err = env.ExecuteActivity(activities.DispatchActivity, cases[0].req)
	var app *temporal.ApplicationError
	var rej activities.Rejection
	if !errors.As(err, &app) || app.Details(&rej) != nil || rej.Name != "SoldOut" || rej.Message != tickets.ErrSoldOut.Error() || rej.Command != tickets.CmdBuyTicket {
		t.Errorf("rejection details %+v (%v)", rej, err)
	}

	// The same command id again: the first result, nothing appended.
	val, err = env.ExecuteActivity(activities.DispatchActivity, activities.Request{
		Command: tickets.CmdBuyTicket, CommandID: "buy-1", Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"})})
	if err != nil {
		t.Fatal(err)
	}
	var again activities.Result
	if err := val.Get(&again); err != nil || !again.Duplicate || again.Records[0].Position != res.Records[0].Position {
		t.Fatalf("retry: %+v %v", again, err)
	}
	// The same payload spaced differently is the same command.
	spaced := json.RawMessage(" {\n  \"concert_id\": \"c1\",\n  \"buyer_id\": \"ada\"\n} ")
	if again, err := b.reg.Dispatch(b.ctx, tickets.CmdBuyTicket, "buy-1", spaced, nil); err != nil || !again.Duplicate {
		t.Fatalf("retry with the payload spaced differently: %+v %v", again, err)
	}
	// The refusal on the direct path is the store's typed error.
	if _, err := b.reg.Dispatch(b.ctx, tickets.CmdBuyTicket, "buy-1", payload(tickets.BuyTicket{ConcertID: "c2", BuyerID: "ada"}), nil); !errors.Is(err, eventstore.ErrCommandIDReused) {
		t.Fatalf("direct dispatch with another payload: %v", err)
	}
}

// Store failures are retryable: the database may come back.
func TestStoreFailureIsRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.store.Pool().Close()
	env := quietSuite().NewTestActivityEnvironment()
	b.acts.Register(env)
	_, err := env.ExecuteActivity(activities.DispatchActivity, activities.Request{
		Command: tickets.CmdBuyTicket, CommandID: "buy-1", Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"})})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != activities.ErrTypeStore || app.NonRetryable() || app.Category() == temporal.ApplicationErrorCategoryBenign {
		t.Fatalf("err = %v, want a retryable store failure, logged as an error", err)
	}
}

// An event from a newer release fails the command on this worker, but a
// worker of that release can run it: retryable. A payload that no release
// can decode is not.
func TestDecodeFailuresThroughTemporal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		version   int
		data      string
		errType   string
		retryable bool
	}{
		{"future version", 3, `{"concert_id":"c1","buyer_id":"x","seat":1,"channel":"app"}`, activities.ErrTypeFutureVersion, true},
		{"broken payload", 2, `not json`, activities.ErrTypeCodec, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "import", Events: []eventstore.EventData{{
				Type: tickets.TypeTicketSold, Version: tt.version, Tags: []string{tickets.ConcertTag("c1")}, Data: []byte(tt.data)}}})
			if err != nil {
				t.Fatal(err)
			}
			env := quietSuite().NewTestActivityEnvironment()
			b.acts.Register(env)
			_, err = env.ExecuteActivity(activities.DispatchActivity, activities.Request{
				Command: tickets.CmdBuyTicket, CommandID: "buy-1", Payload: payload(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"})})
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || app.Type() != tt.errType || app.NonRetryable() == tt.retryable {
				t.Fatalf("err = %v, want a %s error with retryable %v", err, tt.errType, tt.retryable)
			}
		})
	}
}

// quietSuite is a test suite whose SDK logs are discarded: the expected
// activity failures would otherwise flood the test output.
func quietSuite() *testsuite.WorkflowTestSuite {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return &s
}
