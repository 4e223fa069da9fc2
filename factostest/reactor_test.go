package factostest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

func announcement(rx *factostest.Reaction[tickets.Event], buyer string, seat int) eventstore.PlannedEffect {
	id := rx.Record().ID.String()
	return eventstore.PlannedEffect{Kind: tickets.EffectAnnounceTicketSale, Key: "announce-sale:" + id, OrderingKey: tickets.BuyerTag(buyer),
		Args: tickets.AnnounceTicketSale{ConcertID: "c1", BuyerID: buyer, Seat: seat, EventID: id}}
}

// reactorOf is a reactor on sales whose React is f.
func reactorOf(f eventstore.ReactFunc[tickets.Event]) reactors.Reactor[tickets.Event] {
	return reactors.Reactor[tickets.Event]{Name: "test", Codec: codec, Subscribe: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)), React: f}
}

var errReactor = errors.New("reactor failed")

func TestReactorPasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB)
	}{
		{"effect", func(tb testing.TB) {
			sold := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1))
			sold.Then(announcement(sold, "ada", 1))
		}},
		{"args compared as JSON", func(tb testing.TB) {
			sold := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1))
			id := sold.Record().ID.String()
			sold.Then(eventstore.PlannedEffect{Kind: tickets.EffectAnnounceTicketSale, Key: "announce-sale:" + id, OrderingKey: "buyer:ada",
				Args: map[string]any{"seat": 1, "event_id": id, "buyer_id": "ada", "concert_id": "c1"}})
		}},
		{"not subscribed", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(reserved("ada", "r1")).Then()
		}},
		{"built-in effect", func(tb testing.TB) {
			paid := factostest.ForReactor(tb, tickets.PaymentSignalsReactor(codec)).Given(tickets.PaymentReceived{ReservationID: "r1", AmountCents: 500})
			paid.Then(temporaleffects.SignalWorkflowEffect("payment-signal:"+paid.Record().ID.String(), temporaleffects.SignalWorkflow{
				WorkflowID: tickets.ReservationWorkflowID("r1"), Signal: tickets.SignalPayment, Payload: json.RawMessage(`500`)}))
		}},
		{"payload stored at version 1", func(tb testing.TB) {
			old := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).GivenData(eventstore.EventData{
				Type: tickets.TypeTicketSold, Version: 1, Tags: []string{"concert:c1", "buyer:ada"},
				Data: []byte(`{"concert_id":"c1","buyer_id":"ada","seat":1}`)})
			if ch := old.Record().Event.(tickets.TicketSold).Channel; ch != tickets.SaleDirect {
				tb.Errorf("upcast channel = %q", ch)
			}
			old.Then(announcement(old, "ada", 1))
		}},
		{"record id kept", func(tb testing.TB) {
			id := uuid.MustParse("0190f9a0-0000-7000-8000-000000000042")
			data, _ := codec.Encode(sold("ada", 1))
			data.ID = id
			rx := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).GivenData(data)
			if rx.Record().ID != id {
				tb.Errorf("record id = %s, want %s", rx.Record().ID, id)
			}
			rx.Then(announcement(rx, "ada", 1))
		}},
		{"error", func(tb testing.TB) {
			factostest.ForReactor(tb, reactorOf(func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
				return nil, fmt.Errorf("wrapped: %w", errReactor)
			})).Given(sold("ada", 1)).ThenError(errReactor)
		}},
		{"record does not decode", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).GivenData(eventstore.EventData{
				Type: tickets.TypeTicketSold, Version: 9, Data: []byte(`{}`)}).ThenError(eventstore.ErrFutureVersion)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			record(t, tt.run).passes(t)
		})
	}
}

func TestReactorFailures(t *testing.T) {
	t.Parallel()
	planned := func(effects ...eventstore.PlannedEffect) reactors.Reactor[tickets.Event] {
		return reactorOf(func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) { return effects, nil })
	}
	tests := []struct {
		name string
		run  func(tb testing.TB)
		want []string
	}{
		{"other args", func(tb testing.TB) {
			sold := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1))
			sold.Then(announcement(sold, "ada", 2))
		}, []string{
			"factostest: reactor announce_sales given TicketSold v2 tags [concert:c1 buyer:ada] " +
				`{"buyer_id":"ada","channel":"direct","concert_id":"c1","seat":1}: planned effects differ (-want +got):`,
			"\n  -       \"seat\": 2\n  +       \"seat\": 1\n",
		}},
		{"not subscribed", func(tb testing.TB) {
			reserved := factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(reserved("ada", "r1"))
			reserved.Then(announcement(reserved, "ada", 1))
		}, []string{"the reactor's subscription (types=TicketSold tags=) does not select this record, so in production it never receives it and plans nothing; want effects:",
			`[0] announce_ticket_sale key "announce-sale:00000000-0000-7000-8000-000000000001" ordering key "buyer:ada"`}},
		{"error instead of effects", func(tb testing.TB) {
			factostest.ForReactor(tb, reactorOf(func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
				return nil, errReactor
			})).Given(sold("ada", 1)).Then()
		}, []string{"the reaction fails, so River would retry it: reactor failed; want effects:\n    (none)"}},
		{"impure", func(tb testing.TB) {
			factostest.ForReactor(tb, reactorOf(func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
				return []eventstore.PlannedEffect{{Kind: "k", Key: uuid.NewString()}}, nil
			})).Given(sold("ada", 1)).Then()
		}, []string{"the reactor is not pure: reacting to the same record again gave another result (-first +again):",
			"derive keys and args from the record alone", "planned effects differ"}},
		{"no key", func(tb testing.TB) {
			factostest.ForReactor(tb, planned(eventstore.PlannedEffect{Kind: "k"})).Given(sold("ada", 1)).Then()
		}, []string{"effect [0] (k) has no key, so the reaction would fail"}},
		{"shared key", func(tb testing.TB) {
			factostest.ForReactor(tb, planned(eventstore.PlannedEffect{Kind: "a", Key: "x"}, eventstore.PlannedEffect{Kind: "b", Key: "y"},
				eventstore.PlannedEffect{Kind: "c", Key: "x"})).Given(sold("ada", 1)).Then()
		}, []string{`effects [0] and [2] share the key "x", so only the first would run`}},
		{"key the worker refuses", func(tb testing.TB) {
			factostest.ForReactor(tb, planned(eventstore.PlannedEffect{Kind: "k", Key: strings.Repeat("x", eventstore.MaxEffectKeyBytes+1)})).Given(sold("ada", 1)).Then()
		}, []string{"effect [0] (k) would be refused, so the reaction would fail: invalid input: key: too long"}},
		{"ordering key the worker refuses", func(tb testing.TB) {
			factostest.ForReactor(tb, planned(eventstore.PlannedEffect{Kind: "k", Key: "x", OrderingKey: "a\nb"})).Given(sold("ada", 1)).Then()
		}, []string{"effect [0] (k) would be refused", "ordering_key: contains control character U+000A"}},
		{"panic", func(tb testing.TB) {
			factostest.ForReactor(tb, reactorOf(func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
				panic("reactor bug")
			})).Given(sold("ada", 1)).Then()
		}, []string{"the reaction fails, so River would retry it: panic: reactor bug"}},
		{"args not encodable", func(tb testing.TB) {
			factostest.ForReactor(tb, planned(eventstore.PlannedEffect{Kind: "k", Key: "x", Args: func() {}})).Given(sold("ada", 1)).Then()
		}, []string{"the args of effect [0] (k) cannot be encoded as JSON, so the reaction would fail: json: unsupported type: func()"}},
		{"effects instead of an error", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1)).ThenError(errReactor)
		}, []string{`want an error matching "reactor failed", but the reactor planned 1 effect(s):`, "announce_ticket_sale"}},
		{"another error", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).GivenData(eventstore.EventData{
				Type: tickets.TypeTicketSold, Version: 0, Data: []byte(`{}`)}).ThenError(eventstore.ErrFutureVersion)
		}, []string{`the reaction failed with "error decoding event \"TicketSold\" (version 0) at position 1: event \"TicketSold\" version 0 cannot be upcast`,
			`want an error matching "event version newer than the codec's current version" (errors.Is)`}},
		{"error from an unsubscribed record", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(reserved("ada", "r1")).ThenError(errReactor)
		}, []string{"does not select this record", `want the error "reactor failed"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := record(t, tt.run)
			if tt.name == "impure" {
				// The impure reactor also plans something else than none.
				r.fails(t, tt.want[:2], tt.want[2:])
				return
			}
			r.fails(t, tt.want)
		})
	}
}

func TestReactorStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		run   func(tb testing.TB)
		parts []string
	}{
		{"empty subscription", func(tb testing.TB) {
			r := tickets.AnnounceSalesReactor(codec)
			r.Subscribe = eventstore.Query{}
			factostest.ForReactor(tb, r)
		}, []string{`factostest: ForReactor: reactors: reactor "announce_sales": empty subscription`}},
		{"given event not encodable", func(tb testing.TB) {
			factostest.ForReactor(tb, reactorOf(tickets.AnnounceSales)).Given(nil)
		}, []string{"factostest: reactor test: error encoding the given event, <nil> null: unknown event type"}},
		{"expected args not encodable", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1)).Then(eventstore.PlannedEffect{Kind: "k", Key: "x", Args: make(chan int)})
		}, []string{"error encoding the args of the expected effect [0]: json: unsupported type: chan int"}},
		{"error nil", func(tb testing.TB) {
			factostest.ForReactor(tb, tickets.AnnounceSalesReactor(codec)).Given(sold("ada", 1)).ThenError(nil)
		}, []string{"ThenError(nil): name the error the reaction must fail with"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			record(t, tt.run).stops(t, tt.parts...)
		})
	}
}
