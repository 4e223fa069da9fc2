package factostest_test

import (
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
	"github.com/factos-go/factos/internal/testdb"
)

var codec = tickets.NewCodec()

func scheduled(concert string, capacity int) tickets.Event {
	return tickets.ConcertScheduled{ConcertID: concert, Capacity: capacity}
}

func sold(buyer string, seat int) tickets.Event {
	return tickets.TicketSold{ConcertID: "c1", BuyerID: buyer, Seat: seat, Channel: tickets.SaleDirect}
}

func reserved(buyer, reservation string) tickets.Event {
	return tickets.TicketReserved{ConcertID: "c1", BuyerID: buyer, ReservationID: reservation}
}

func buy(buyer string) tickets.BuyTicket { return tickets.BuyTicket{ConcertID: "c1", BuyerID: buyer} }

func newStore(t *testing.T) *eventstore.Store {
	t.Helper()
	store, err := eventstore.New(testdb.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// modes runs a scenario in memory (a nil store) and against a store of its
// own.
func modes(t *testing.T, f func(t *testing.T, store *eventstore.Store)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		f(t, nil)
	})
	t.Run("store", func(t *testing.T) {
		t.Parallel()
		f(t, newStore(t))
	})
}

// Correct handlers and expectations pass, in memory and in a store: query
// mode and stream mode, events, rejections and no events.
func TestHandlerPasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB, opts *factostest.HandlerOpts)
	}{
		{"events", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 2), sold("bob", 1)).
				Unrelated(scheduled("c2", 5), tickets.TicketSold{ConcertID: "c2", BuyerID: "cy", Seat: 1, Channel: tickets.SaleDirect}).
				When(buy("ada")).
				Then(sold("ada", 2))
		}},
		{"rejection", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
				Given(scheduled("c1", 2), sold("bob", 1), reserved("cy", "r1")).
				When(buy("ada")).
				ThenRejected(tickets.ErrSoldOut)
		}},
		{"no facts", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).When(buy("ada")).ThenRejected(tickets.ErrConcertNotFound)
		}},
		{"no events", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.ReleaseReservationHandler(codec), opts).
				Given(scheduled("c1", 2)).
				When(tickets.ReleaseReservation{ConcertID: "c1", ReservationID: "r9"}).
				Then()
		}},
		{"stream mode", func(tb testing.TB, opts *factostest.HandlerOpts) {
			schedule := factostest.ForHandler(tb, tickets.ScheduleConcertHandler(codec), opts)
			schedule.When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: 3}).Then(scheduled("c1", 3))
		}},
		{"stream mode rejection", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.ScheduleConcertHandler(codec), opts).
				Given(scheduled("c1", 3)).
				Unrelated(scheduled("c2", 3)).
				When(tickets.ScheduleConcert{ConcertID: "c1", Capacity: 3}).
				ThenRejected(tickets.ErrConcertExists)
		}},
		{"wrapped domain error", func(tb testing.TB, opts *factostest.HandlerOpts) {
			factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).When(tickets.BuyTicket{ConcertID: "c1"}).ThenRejected(tickets.ErrInvalidCommand)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, store *eventstore.Store) {
				record(t, func(tb testing.TB) { tt.run(tb, &factostest.HandlerOpts{Store: store}) }).passes(t)
			})
		})
	}
}

// A scenario extends a shared history without changing it.
func TestHandlerScenariosShareHistory(t *testing.T) {
	t.Parallel()
	record(t, func(tb testing.TB) {
		sale := factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), nil).Given(scheduled("c1", 2))
		one := sale.Given(sold("bob", 1))
		one.When(buy("ada")).Then(sold("ada", 2))
		one.Given(sold("ada", 2)).When(buy("cy")).ThenRejected(tickets.ErrSoldOut)
		// Neither extension reached the shared history.
		sale.When(buy("ada")).Then(sold("ada", 1))
	}).passes(t)
}

// narrowQuery forgets reservations: a held seat is not seen.
func narrowQuery() eventstore.Handler[tickets.BuyTicket, tickets.Event, tickets.Sale] {
	h := tickets.BuyTicketHandler(codec)
	h.Query = func(c tickets.BuyTicket) eventstore.Query {
		return eventstore.NewQuery(eventstore.TypesAndTags([]string{tickets.TypeConcertScheduled, tickets.TypeTicketSold}, tickets.ConcertTag(c.ConcertID)))
	}
	return h
}

// wideQuery reads every registration, whatever the username: every
// registration conflicts with every other.
func wideQuery() eventstore.Handler[tickets.RegisterUser, tickets.Event, bool] {
	h := tickets.RegisterUserHandler(codec)
	h.Query = func(tickets.RegisterUser) eventstore.Query {
		return eventstore.NewQuery(eventstore.Types(tickets.TypeUserRegistered))
	}
	return h
}

// impure numbers seats from a counter outside the state.
func impure() eventstore.Handler[tickets.BuyTicket, tickets.Event, tickets.Sale] {
	h := tickets.BuyTicketHandler(codec)
	seat := 0
	h.Decider.Decide = func(_ tickets.Sale, c tickets.BuyTicket) ([]tickets.Event, error) {
		seat++
		return []tickets.Event{tickets.TicketSold{ConcertID: c.ConcertID, BuyerID: c.BuyerID, Seat: seat, Channel: tickets.SaleDirect}}, nil
	}
	return h
}

// sharedInitial folds into one map for every decision.
func sharedInitial() eventstore.Handler[tickets.BuyTicket, tickets.Event, map[string]int] {
	counts := map[string]int{}
	return eventstore.Handler[tickets.BuyTicket, tickets.Event, map[string]int]{
		Codec:  codec,
		Stream: func(c tickets.BuyTicket) string { return tickets.BuyerStream(c.BuyerID) },
		Query:  func(c tickets.BuyTicket) eventstore.Query { return tickets.SaleStateQuery(c.ConcertID) },
		Decider: eventstore.Decider[tickets.BuyTicket, tickets.Event, map[string]int]{
			Initial: func() map[string]int { return counts },
			Evolve: func(s map[string]int, e tickets.Event) map[string]int {
				if _, ok := e.(tickets.TicketSold); ok {
					s["sold"]++
				}
				return s
			},
			Decide: func(s map[string]int, c tickets.BuyTicket) ([]tickets.Event, error) {
				return []tickets.Event{tickets.TicketSold{ConcertID: c.ConcertID, BuyerID: c.BuyerID, Seat: s["sold"] + 1, Channel: tickets.SaleDirect}}, nil
			},
		},
	}
}

// A domain whose event loses a field in its codec.
type noteEvent interface{ isNote() }

type Noted struct {
	Text   string `json:"text"`
	Author string `json:"-"` // never stored
}

func (Noted) isNote() {}

type Note struct{ Text, Author string }

func lossyCodec() eventstore.Handler[Note, noteEvent, int] {
	c := eventstore.NewJSONCodec[noteEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[Noted]{Name: "Noted"})
	return eventstore.Handler[Note, noteEvent, int]{
		Codec:  c,
		Stream: func(Note) string { return "notes" },
		Query:  func(Note) eventstore.Query { return eventstore.NewQuery(eventstore.Types("Noted")) },
		Decider: eventstore.Decider[Note, noteEvent, int]{
			Evolve: func(n int, _ noteEvent) int { return n + 1 },
			Decide: func(_ int, c Note) ([]noteEvent, error) { return []noteEvent{Noted(c)}, nil },
		},
	}
}

// stray is an event no codec knows.
type stray struct{}

// Wrong expectations and flawed handlers are reported, with what a
// developer needs to fix them, in memory and in a store alike.
func TestHandlerFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(tb testing.TB, opts *factostest.HandlerOpts)
		want [][]string // one entry per error, the parts it must contain
	}{
		{
			name: "other events",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
					Given(scheduled("c1", 2), sold("bob", 1)).When(buy("ada")).Then(sold("ada", 1))
			},
			want: [][]string{{
				`factostest: when tickets.BuyTicket {"concert_id":"c1","buyer_id":"ada"}: decided events differ (-want +got):`,
				"\n  -       \"seat\": 1\n  +       \"seat\": 2\n",
			}},
		},
		{
			name: "more events than decided",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
					Given(scheduled("c1", 2)).When(buy("ada")).Then(sold("ada", 1), sold("ada", 2))
			},
			want: [][]string{{"decided events differ (-want +got):", "  - [1] TicketSold v2 tags [concert:c1 buyer:ada]\n"}},
		},
		{
			name: "rejected instead",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
					Given(scheduled("c1", 1), sold("bob", 1)).When(buy("ada")).Then(sold("ada", 2))
			},
			want: [][]string{{`the decider rejected the command with "sold out"; want events:`, "[0] TicketSold v2 tags [concert:c1 buyer:ada]"}},
		},
		{
			name: "decided instead of rejected",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
					Given(scheduled("c1", 2), sold("bob", 1)).When(buy("ada")).ThenRejected(tickets.ErrSoldOut)
			},
			want: [][]string{{`want a rejection matching "sold out", but the decider decided 1 event(s):`, `"seat": 2`}},
		},
		{
			name: "another rejection",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).When(buy("ada")).ThenRejected(tickets.ErrSoldOut)
			},
			want: [][]string{{`rejected with "concert not found", want an error matching "sold out" (errors.Is)`}},
		},
		{
			name: "query misses a given fact",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, narrowQuery(), opts).
					Given(scheduled("c1", 1), reserved("bob", "r1")).When(buy("ada")).ThenRejected(tickets.ErrSoldOut)
			},
			want: [][]string{
				{
					"the query does not select exactly the given facts.\n  query: (types=ConcertScheduled|TicketSold tags=concert:c1)\n",
					"  missed: 1 given fact(s) the query does not select, so in production the decision never sees them",
					"\n    given[1] TicketReserved v1 tags [concert:c1 buyer:bob reservation:r1] " +
						`{"buyer_id":"bob","concert_id":"c1","reservation_id":"r1"}`,
				},
				{`want a rejection matching "sold out", but the decider decided 1 event(s)`},
			},
		},
		{
			name: "query selects an unrelated fact",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, wideQuery(), opts).
					Unrelated(tickets.UserRegistered{UserID: "u2", Username: "bob"}).
					When(tickets.RegisterUser{UserID: "u1", Username: "ada"}).
					Then(tickets.UserRegistered{UserID: "u1", Username: "ada"})
			},
			want: [][]string{
				{
					"query: (types=UserRegistered tags=)",
					"selected needlessly: 1 fact(s) declared Unrelated that the query selects, so the decision depends on them:" +
						" they widen its consistency boundary, and commands writing them conflict with it for nothing",
					"\n    unrelated[0] UserRegistered v1 tags [user:u2 username:bob] " + `{"user_id":"u2","username":"bob"}`,
				},
				{`the decider rejected the command with "username taken"`},
			},
		},
		{
			name: "impure decider",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, impure(), opts).Given(scheduled("c1", 5)).When(buy("ada")).Then(sold("ada", 1))
			},
			want: [][]string{{"the decider is not pure: deciding the same command on the same facts again gave another result (-first +again):",
				"  -       \"seat\": 1\n  +       \"seat\": 2\n", "take clocks, random numbers and new ids from the command"}},
		},
		{
			name: "state shared between decisions",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, sharedInitial(), opts).Given(scheduled("c1", 5), sold("bob", 1)).When(buy("ada")).Then(sold("ada", 2))
			},
			want: [][]string{{"the decider is not pure", "Initial must return fresh maps and slices"}},
		},
		{
			name: "event does not survive its codec",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, lossyCodec(), opts).When(Note{Text: "hi", Author: "ada"}).Then(Noted{Text: "hi", Author: "ada"})
			},
			want: [][]string{{
				"decided event [0] does not survive its codec: stored and decoded it is\n" +
					`    factostest_test.Noted{Text:"hi", Author:""}` + "\n  not\n" + `    factostest_test.Noted{Text:"hi", Author:"ada"}`,
				`tagged json:"-"`,
			}},
		},
		{
			name: "old payload from the future",
			run: func(tb testing.TB, opts *factostest.HandlerOpts) {
				factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
					Given(scheduled("c1", 5)).
					GivenData(eventstore.EventData{Type: tickets.TypeTicketSold, Version: 3, Tags: []string{"concert:c1"}, Data: []byte(`{}`)}).
					When(buy("ada")).Then(sold("ada", 2))
			},
			want: [][]string{{`error decoding event "TicketSold" (version 3) at position 2: event "TicketSold" version 3 is newer than the codec's current version 2`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, store *eventstore.Store) {
				record(t, func(tb testing.TB) { tt.run(tb, &factostest.HandlerOpts{Store: store}) }).fails(t, tt.want...)
			})
		})
	}
}

// Decisions a dispatch would fail on are reported as such, not as a
// wrong outcome.
func TestHandlerReportsDispatchFailures(t *testing.T) {
	t.Parallel()
	h := eventstore.Handler[string, any, int]{
		Codec:  eventstore.NewJSONCodec[any](),
		Stream: func(string) string { return "s" },
		Query:  func(string) eventstore.Query { return eventstore.NewQuery(eventstore.Types("T")) },
		Decider: eventstore.Decider[string, any, int]{
			Evolve: func(n int, _ any) int { return n },
			Decide: func(int, string) ([]any, error) { return []any{stray{}}, nil },
		},
	}
	r := record(t, func(tb testing.TB) { factostest.ForHandler(tb, h, nil).When("go").Then() })
	r.fails(t, []string{`factostest: when string "go": error encoding decided event [0], factostest_test.stray {}, so the dispatch would fail with an *eventstore.EncodeError:`, "unknown event type"})
}

// Mistakes in the scenario itself stop the test at once.
func TestHandlerStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		run   func(tb testing.TB)
		parts []string
	}{
		{"nil decide", func(tb testing.TB) {
			h := tickets.BuyTicketHandler(codec)
			h.Decider.Decide = nil
			factostest.ForHandler(tb, h, nil)
		}, []string{"factostest: ForHandler: the handler's Decider.Decide is nil"}},
		{"nil codec", func(tb testing.TB) {
			h := tickets.BuyTicketHandler(codec)
			h.Codec = nil
			factostest.ForHandler(tb, h, nil)
		}, []string{"the handler's Codec is nil"}},
		{"given fact not encodable", func(tb testing.TB) {
			h := eventstore.Handler[string, any, int]{Codec: eventstore.NewJSONCodec[any](), Stream: func(string) string { return "s" },
				Decider: eventstore.Decider[string, any, int]{Evolve: func(n int, _ any) int { return n }, Decide: func(int, string) ([]any, error) { return nil, nil }}}
			factostest.ForHandler(tb, h, nil).Given(stray{}).When("go").Then()
		}, []string{`factostest: when string "go": error encoding given[0], factostest_test.stray {}: unknown event type`}},
		{"expected event not encodable", func(tb testing.TB) {
			h := eventstore.Handler[string, any, int]{Codec: eventstore.NewJSONCodec[any](), Stream: func(string) string { return "s" },
				Decider: eventstore.Decider[string, any, int]{Evolve: func(n int, _ any) int { return n }, Decide: func(int, string) ([]any, error) { return nil, nil }}}
			factostest.ForHandler(tb, h, nil).When("go").Then(stray{})
		}, []string{"error encoding the expected event [0], factostest_test.stray {}"}},
		{"rejected with nil", func(tb testing.TB) {
			factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), nil).When(buy("ada")).ThenRejected(nil)
		}, []string{"ThenRejected(nil): name the domain error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			record(t, tt.run).stops(t, tt.parts...)
		})
	}
}

// Against a store, events stored before the scenario that its query
// selects would join its facts: the scenario refuses to run.
func TestHandlerStoreMustStartEmpty(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	opts := &factostest.HandlerOpts{Store: store}
	r := record(t, func(tb testing.TB) {
		sale := factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts)
		sale.Given(scheduled("c1", 1)).When(buy("ada")).Then(sold("ada", 1))
		// A second scenario about the same concert in the same store.
		sale.Given(scheduled("c1", 1)).When(buy("ada")).Then(sold("ada", 1))
	})
	r.stops(t, "the store already holds 2 events the query (types=ConcertScheduled|TicketSold|TicketReserved|ReservationReleased tags=concert:c1) selects, from before this scenario",
		"give each scenario a store over an empty database")
	if len(r.errors) != 0 {
		t.Errorf("the first scenario failed: %q", r.errors)
	}

	// Scenarios about different entities can share a store.
	record(t, func(tb testing.TB) {
		factostest.ForHandler(tb, tickets.BuyTicketHandler(codec), opts).
			Given(scheduled("c2", 1)).When(tickets.BuyTicket{ConcertID: "c2", BuyerID: "ada"}).
			Then(tickets.TicketSold{ConcertID: "c2", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
	}).passes(t)

	stream := record(t, func(tb testing.TB) {
		schedule := factostest.ForHandler(tb, tickets.ScheduleConcertHandler(codec), opts)
		schedule.When(tickets.ScheduleConcert{ConcertID: "c3", Capacity: 1}).Then(scheduled("c3", 1))
		schedule.When(tickets.ScheduleConcert{ConcertID: "c3", Capacity: 1}).Then(scheduled("c3", 1))
	})
	stream.stops(t, `the stream "concert-c3" must be empty before the scenario, and holds 1 events`)
}

// omitted is an event whose empty list is stored as no list at all: it
// decodes as nil, which is the same event.
type omitted struct {
	Items []string `json:"items,omitempty"`
}

type addNothing struct{}

// An empty slice that the codec stores as an omitted field, and decodes
// as nil, survives its codec: the round-trip check does not report it.
func TestHandlerRoundTripTakesEmptyAsNil(t *testing.T) {
	t.Parallel()
	codec := eventstore.NewJSONCodec[any]()
	eventstore.RegisterJSON(codec, eventstore.JSONType[omitted]{Name: "Omitted"})
	h := eventstore.Handler[addNothing, any, struct{}]{
		Decider: eventstore.Decider[addNothing, any, struct{}]{
			Evolve: func(s struct{}, _ any) struct{} { return s },
			Decide: func(struct{}, addNothing) ([]any, error) { return []any{omitted{Items: []string{}}}, nil },
		},
		Codec: codec, Stream: func(addNothing) string { return "s" },
	}
	record(t, func(tb testing.TB) {
		factostest.ForHandler(tb, h, nil).When(addNothing{}).Then(omitted{Items: []string{}})
	}).passes(t)
}
