// Package factostest tests a factos domain in given/when/then form:
// command handlers (given facts, when a command, then these events or this
// rejection), reactors (given a record, then these effects) and projections
// (given records, then this view). It is to factos what rivertest is to
// River: a kit for the application's own tests.
//
// # Handlers
//
//	buy := factostest.ForHandler(t, tickets.BuyTicketHandler(codec), nil)
//	sale := buy.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 1})
//
//	sale.When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
//		Then(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
//	sale.Given(tickets.TicketSold{ConcertID: "c1", BuyerID: "bob", Seat: 1, Channel: tickets.SaleDirect}).
//		When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
//		ThenRejected(tickets.ErrSoldOut)
//
// A scenario runs the handler as a dispatch does: the facts are encoded
// with the handler's codec and decoded again, the ones the handler's query
// selects are folded, the command is decided, and the decided events are
// encoded. Events are compared as the store holds them (type, version,
// tags, metadata, payload), so two events are equal exactly when they
// would be stored alike.
//
// Given facts are the ones the decision needs: the handler's query must
// select every one of them. Unrelated facts are stored too but lie outside
// the decision's consistency boundary, typically the same kind of facts
// about another entity: the query must select none. A query that misses a
// given fact (the decision would never see it in production) or selects an
// unrelated one (the boundary is wider than the rule, so unrelated commands
// conflict) is reported with the facts concerned and the query.
//
// The kit also reports what a dispatch would trip over later: a decider
// that decides differently when run again on the same facts (dispatches
// retry), and a decided event that does not come back equal from its
// codec (a field the codec drops is lost for every later decision).
//
// # Against a store
//
// In memory, the query is evaluated with Query.Matches, which gives the
// same answers as the store's SQL. With HandlerOpts.Store the same
// scenario runs against PostgreSQL: the facts are appended, the query is
// read by the store, the command goes through eventstore.Dispatch, and the
// decided events are read back. Each scenario appends its facts, so give
// each one a store over an empty database (or ids no other scenario uses).
//
// # Reactors
//
//	announce := factostest.ForReactor(t, tickets.AnnounceSalesReactor(codec))
//	sold := announce.Given(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
//	sold.Then(eventstore.PlannedEffect{Kind: tickets.EffectAnnounceTicketSale, Key: "announce-sale:" + sold.Record().ID.String(), OrderingKey: "buyer:ada", Args: ...})
//
// ForReactor takes the reactors.Reactor the application registers. A
// record its subscription does not select is never delivered, so it plans
// nothing. Effects are compared as their River jobs carry them: kind, key
// and args as JSON. The kit reports effects the reaction worker would
// refuse (no key, args that cannot be encoded), two effects sharing a key
// (the second would never run), and a reactor that plans differently when
// run again.
//
// # Projections
//
//	sales := factostest.ForView(t, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Query: &q})
//	sales.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 2}).
//		Unrelated(tickets.ConcertScheduled{ConcertID: "c2", Capacity: 9}).
//		Then(tickets.SaleState{...})
//
// ForView takes an eventstore.View. ForProjection takes any Projection,
// a function from records to a view, so a projection that writes tables
// can be tested the same way by applying the records in a transaction,
// reading the view back and rolling back.
//
// # Versions
//
// GivenData gives facts as they are stored, for example payloads an older
// release wrote at an older version, kept in testdata: the scenario then
// runs them through the codec's upcasters, exactly as a read of old
// history does.
//
// # Failures
//
// Failures are reported to the testing.TB given to ForHandler, ForReactor,
// ForView or ForProjection (so call those in the test or subtest that
// owns the scenario) with Errorf (wrong outcome, wrong query, impure code)
// or Fatalf (facts that cannot be encoded or stored, a store that is not
// empty), and show differences as a line diff (-want +got) of readable
// renderings: canonical indented JSON for payloads, effects' args and
// views.
package factostest
