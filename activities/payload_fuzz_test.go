package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
)

// probeCmd is the command of the instrumented handler: a field of each
// JSON kind.
type probeCmd struct {
	ID     string            `json:"id"`
	N      int64             `json:"n"`
	Tags   []string          `json:"tags,omitempty"`
	Note   *string           `json:"note,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	Amount float64           `json:"amount,omitempty"`
	OK     bool              `json:"ok,omitempty"`
	Raw    json.RawMessage   `json:"raw,omitempty"`
}

// probeEvent is what the instrumented handler decides.
type probeEvent struct {
	ID string `json:"id"`
	N  int64  `json:"n"`
}

var errProbeNegative = errors.New("negative n")

const cmdProbe = "fuzz.Probe"

// payloadFuzz is the fuzz function's database and registry, made on first
// use, with the commands the decider received in the current iteration.
type payloadFuzz struct {
	reg      *activities.Registry
	received []probeCmd
}

func (p *payloadFuzz) init(ctx context.Context, pool *pgxpool.Pool) error {
	store, err := eventstore.New(pool, nil)
	if err != nil {
		return err
	}
	p.reg = activities.NewRegistry(store, &activities.Config{DomainErrors: tickets.DomainErrors})
	codec := eventstore.NewJSONCodec[probeEvent]()
	eventstore.RegisterJSON(codec, eventstore.JSONType[probeEvent]{Name: "Probed", Tags: func(e probeEvent) []string { return []string{"probe:" + e.ID} }})
	err = activities.Register(p.reg, cmdProbe, eventstore.Handler[probeCmd, probeEvent, int]{
		Codec:  codec,
		Stream: func(c probeCmd) string { return "probe-" + c.ID },
		Query: func(c probeCmd) eventstore.Query {
			if len(c.Tags) > 0 {
				return eventstore.NewQuery(eventstore.Tags(c.Tags...))
			}
			return eventstore.NewQuery(eventstore.Tags("probe:" + c.ID))
		},
		Decider: eventstore.Decider[probeCmd, probeEvent, int]{
			Evolve: func(n int, _ probeEvent) int { return n + 1 },
			Decide: func(_ int, c probeCmd) ([]probeEvent, error) {
				p.received = append(p.received, c)
				if c.N < 0 {
					return nil, errProbeNegative
				}
				return []probeEvent{{ID: c.ID, N: c.N}}, nil
			},
		},
	})
	if err != nil {
		return err
	}
	if err := tickets.RegisterCommands(p.reg, tickets.NewCodec()); err != nil {
		return err
	}
	_, err = p.reg.Dispatch(ctx, tickets.CmdScheduleConcert, "schedule-c1", []byte(`{"concert_id":"c1","capacity":1000000}`), nil)
	return err
}

// FuzzCommandPayload sends arbitrary bytes as the payload of a registered
// command (the instrumented probe or one of the ticket commands), under
// an arbitrary command name and id. The outcome is a *PayloadError, an
// *UnknownCommandError, or what a dispatch answers (a result, a rejection,
// invalid input); never a panic, never a store failure. A payload that is
// not valid JSON never reaches the decider, and what the decider receives
// is exactly the payload's JSON value.
func FuzzCommandPayload(f *testing.F) {
	for _, seed := range []struct {
		name, id string
		payload  string
	}{
		{cmdProbe, "p-1", `{"id":"a","n":1,"tags":["x","y"],"note":"hi","attrs":{"k":"v"},"amount":1.5,"ok":true,"raw":[1,{"a":null}]}`},
		{cmdProbe, "", `{"id":"b","n":-1}`},
		{cmdProbe, "p-3", `{"id":"c\u0000"}`},
		{cmdProbe, "p-4", `{"id":"d","tags":["\u001f"]}`},
		{cmdProbe, "p-5", `{"id":"e","n":1e400}`},
		{cmdProbe, "p-6", `{"id":"f","n":9223372036854775808}`},
		{cmdProbe, "p-7", `{"id":"g","ID":"h"}`},
		{cmdProbe, "p-8", `{"id":"i","id":"j"}`},
		{cmdProbe, "p-9", `{"id":"k","unknown":1}`},
		{cmdProbe, "p-10", `{"id":"l"} {}`},
		{cmdProbe, "p-11", `{"id":"m",`},
		{cmdProbe, "p-12", " null "},
		{cmdProbe, "p-13", ""},
		{cmdProbe, "p-14", `[]`},
		{cmdProbe, "p-15", `"'; DROP TABLE factos_events; --"`},
		{cmdProbe, "p-16", "{\"id\":\"\xff\"}"},
		{cmdProbe, "p-17", `{"id":"\ud800"}`},
		{cmdProbe, "p-18", `{"id":"n","raw":{"deep":[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]}}`},
		{cmdProbe, "'; DROP TABLE factos_commands; --", `{"id":"o"}`},
		{cmdProbe, "p-19\x00", `{"id":"p"}`},
		{tickets.CmdBuyTicket, "b-1", `{"concert_id":"c1","buyer_id":"ada"}`},
		{tickets.CmdBuyTicket, "b-2", `{"concert_id":"c1","buyer_id":"\u202eada"}`},
		{tickets.CmdRegisterUser, "u-1", `{"user_id":"u1","username":"%s$1"}`},
		{tickets.CmdRecordPayment, "r-1", `{"reservation_id":"r1","amount_cents":"5"}`},
		{"tickets.Nope", "x-1", `{}`},
		{"", "x-2", `{}`},
	} {
		f.Add(seed.name, seed.id, []byte(seed.payload))
	}
	p := &payloadFuzz{}
	db := testdb.Lazy(f, p.init)
	f.Fuzz(func(t *testing.T, name, commandID string, payload []byte) {
		ctx := context.Background()
		db(t)
		p.received = p.received[:0]
		res, err := p.reg.Dispatch(ctx, name, commandID, payload, nil)

		var (
			unknown *activities.UnknownCommandError
			perr    *activities.PayloadError
		)
		switch {
		case err == nil:
			if res == nil || (!res.Duplicate && len(res.Records) == 0 && name != tickets.CmdReleaseReservation) {
				t.Fatalf("dispatch answered %+v", res)
			}
		case errors.As(err, &unknown):
			if unknown.Command != name || slices.Contains(p.reg.Commands(), name) {
				t.Fatalf("unknown command error %v for %q", err, name)
			}
		case errors.As(err, &perr):
			if perr.Command != name || perr.Err == nil {
				t.Fatalf("payload error %+v", perr)
			}
		case errors.Is(err, eventstore.ErrRejected), errors.Is(err, eventstore.ErrInvalidInput):
		default:
			t.Fatalf("dispatch of %q with payload %q failed with %T: %v; want a payload error or a dispatch outcome", name, payload, err, err)
		}
		if !json.Valid(payload) && !errors.As(err, &unknown) && !errors.As(err, &perr) {
			t.Fatalf("invalid JSON %q was not refused as a payload: %v", payload, err)
		}

		// What reached the decider is exactly the payload's value.
		if len(p.received) > 0 && perr != nil {
			t.Fatalf("the decider ran although the payload was refused: %v", err)
		}
		for _, got := range p.received {
			if !json.Valid(payload) {
				t.Fatalf("invalid JSON %q reached the decider as %+v", payload, got)
			}
			var want probeCmd
			if err := json.Unmarshal(payload, &want); err != nil {
				t.Fatalf("the decider received %+v from %q, which does not decode: %v", got, payload, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the decider received %+v, the payload %q says %+v", got, payload, want)
			}
			again, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var back probeCmd
			if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("%+v does not round-trip through JSON: %s -> %+v (%v)", got, again, back, err)
			}
		}

		// The activity maps refusals to non-retryable application errors.
		if commandID != "" && (unknown != nil || perr != nil) {
			_, aerr := p.reg.Activities().Dispatch(ctx, activities.Request{Command: name, CommandID: commandID, Payload: payload})
			want := activities.ErrTypeBadPayload
			if unknown != nil {
				want = activities.ErrTypeUnknownCommand
			}
			var app *temporal.ApplicationError
			if !errors.As(aerr, &app) || app.Type() != want || !app.NonRetryable() {
				t.Fatalf("activity error %v, want a non-retryable %s", aerr, want)
			}
		}
	})
}
