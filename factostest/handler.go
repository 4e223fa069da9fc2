package factostest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/factos-go/factos/eventstore"
)

// HandlerOpts configure ForHandler. A nil *HandlerOpts is valid.
type HandlerOpts struct {
	// Store, if set, runs every scenario against this store instead of in
	// memory: the facts are appended, the handler's query is read with the
	// store's own SQL, and the command goes through eventstore.Dispatch, so
	// the query, the validation of the events and their round trip through
	// PostgreSQL are checked too. Each scenario appends its facts, so give
	// each one a store over an empty database, or ids no other scenario
	// uses; a scenario whose query selects events stored before it fails.
	// Default: nil, in memory, no database.
	Store *eventstore.Store
}

// HandlerTest is a command handler with the facts given so far. ForHandler
// returns one with none; Given, GivenData and Unrelated return copies with
// more, so one history can start several scenarios.
type HandlerTest[C, E, S any] struct {
	tb    testing.TB
	h     eventstore.Handler[C, E, S]
	store *eventstore.Store
	facts facts[E]
}

// ForHandler starts the scenarios of handler h, reported to tb:
//
//	buy := factostest.ForHandler(t, tickets.BuyTicketHandler(codec), nil)
//	buy.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 1}).
//		When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}).
//		Then(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1, Channel: tickets.SaleDirect})
func ForHandler[C, E, S any](tb testing.TB, h eventstore.Handler[C, E, S], opts *HandlerOpts) *HandlerTest[C, E, S] {
	tb.Helper()
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"Decider.Decide", h.Decider.Decide == nil}, {"Decider.Evolve", h.Decider.Evolve == nil},
		{"Codec", h.Codec == nil}, {"Stream", h.Stream == nil},
	} {
		if f.missing {
			tb.Fatalf("factostest: ForHandler: the handler's %s is nil (Dispatch would refuse it)", f.name)
		}
	}
	t := &HandlerTest[C, E, S]{tb: tb, h: h}
	if opts != nil {
		t.store = opts.Store
	}
	return t
}

// Given adds facts the decision needs: its query must select every one.
func (t *HandlerTest[C, E, S]) Given(events ...E) *HandlerTest[C, E, S] {
	c := *t
	c.facts = t.facts.withEvents(given, events)
	return &c
}

// GivenData adds given facts as they are stored, for example payloads an
// older release wrote at an older version (read from testdata), so that
// the scenario runs them through the codec's upcasters.
func (t *HandlerTest[C, E, S]) GivenData(data ...eventstore.EventData) *HandlerTest[C, E, S] {
	c := *t
	c.facts = t.facts.withData(data)
	return &c
}

// Unrelated adds facts that are stored but outside the decision's
// consistency boundary: its query must select none of them. Typically the
// same kind of facts about another entity (another concert, another
// username), which a too wide query would pick up.
func (t *HandlerTest[C, E, S]) Unrelated(events ...E) *HandlerTest[C, E, S] {
	c := *t
	c.facts = t.facts.withEvents(unrelated, events)
	return &c
}

// When names the command to decide.
func (t *HandlerTest[C, E, S]) When(cmd C) *Decision[C, E, S] {
	return &Decision[C, E, S]{t: t, cmd: cmd}
}

// Decision is a command given facts, ready to be checked with Then or
// ThenRejected. Each check runs the scenario afresh.
type Decision[C, E, S any] struct {
	t   *HandlerTest[C, E, S]
	cmd C
}

// Then checks that the command decides exactly events, in order (none: the
// command decides nothing). Events are compared as the store holds them:
// type, version, tags, metadata and encoded payload.
func (d *Decision[C, E, S]) Then(events ...E) {
	tb := d.t.tb
	tb.Helper()
	want := make([]item, len(events))
	for i, e := range events {
		data, err := d.t.h.Codec.Encode(e)
		if err != nil {
			tb.Fatalf("%s: error encoding the expected event [%d], %s: %v", d.name(), i, describe(e), err)
		}
		want[i] = eventItem(data)
	}
	got := d.run()
	if got == nil {
		return
	}
	if got.rejected != nil {
		tb.Errorf("%s: the decider rejected the command with %q; want events:\n%s", d.name(), got.rejected, indent(renderItems(want), "    "))
		return
	}
	if w, g := renderItems(want), got.render(); !sameLines(w, g) {
		tb.Errorf("%s: decided events differ (-want +got):\n%s", d.name(), indent(strings.Split(diff(w, g), "\n"), "  "))
	}
}

// ThenRejected checks that the decider rejects the command with an error
// matching want (errors.Is), so that the dispatch appends nothing.
func (d *Decision[C, E, S]) ThenRejected(want error) {
	tb := d.t.tb
	tb.Helper()
	if want == nil {
		tb.Fatalf("%s: ThenRejected(nil): name the domain error the decider must return (Then() checks a command that decides no events)", d.name())
	}
	got := d.run()
	switch {
	case got == nil:
	case got.rejected == nil:
		tb.Errorf("%s: want a rejection matching %q, but the decider decided %d event(s):\n%s", d.name(), want, len(got.items), indent(got.render(), "    "))
	case !errors.Is(got.rejected, want):
		tb.Errorf("%s: rejected with %q, want an error matching %q (errors.Is)", d.name(), got.rejected, want)
	}
}

func (d *Decision[C, E, S]) name() string { return "factostest: when " + describe(d.cmd) }

// decided is the outcome of a decision: events or a rejection.
type decided[E any] struct {
	events   []E                    // as the decider returned them
	data     []eventstore.EventData // as the store holds them
	items    []item
	rejected error // the decider's domain error
}

func (o *decided[E]) render() []string {
	if o.rejected != nil {
		return []string{"rejected: " + o.rejected.Error()}
	}
	return renderItems(o.items)
}

func (o *decided[E]) add(ev E, data eventstore.EventData) {
	o.events = append(o.events, ev)
	o.data = append(o.data, data)
	o.items = append(o.items, eventItem(data))
}

// decisionCost is what a needless selection costs a decision.
const decisionCost = "depends on them: they widen its consistency boundary, and commands writing them conflict with it for nothing"

// run runs the scenario, reports what it finds wrong on the way, and
// returns the outcome, or nil when there is none to compare.
func (d *Decision[C, E, S]) run() *decided[E] {
	tb, h := d.t.tb, d.t.h
	tb.Helper()
	st, err := d.t.facts.encode(h.Codec)
	if err != nil {
		tb.Fatalf("%s: %v", d.name(), err)
	}
	stream := h.Stream(d.cmd)
	// Given facts go to the command's own stream, which is the whole
	// context of a stream-revision handler (no Query).
	streamOf := func(r role) string {
		if r == given {
			return stream
		}
		return UnrelatedStream
	}
	if d.t.store != nil {
		return d.runStore(st, streamOf)
	}

	recs := records(st, streamOf)
	var context []eventstore.RawRecord
	selected := make([]bool, len(recs))
	var q eventstore.Query
	if h.Query != nil {
		q = h.Query(d.cmd)
	}
	for i, r := range recs {
		if h.Query != nil {
			selected[i] = q.Matches(r.Type, r.Tags)
		} else {
			selected[i] = r.Stream == stream
		}
		if selected[i] {
			context = append(context, r)
		}
	}
	if h.Query != nil {
		if msg := selection(st, selected, q, "the decision", decisionCost); msg != "" {
			tb.Errorf("%s: %s", d.name(), msg)
		}
	}
	out, failure := d.decide(context)
	if failure != "" {
		tb.Errorf("%s: %s", d.name(), failure)
		return nil
	}
	d.checkPure(out, context)
	d.checkRoundTrip(out)
	return out
}

// runStore runs the scenario against the store.
func (d *Decision[C, E, S]) runStore(st []stored, streamOf func(role) string) *decided[E] {
	tb, h, store := d.t.tb, d.t.h, d.t.store
	tb.Helper()
	ctx := tb.Context()
	stream := streamOf(given)
	if h.Query != nil {
		if err := checkEmpty(ctx, store, h.Query(d.cmd)); err != nil {
			tb.Fatalf("%s: %v", d.name(), err)
		}
	} else if recs, _, err := store.ReadStream(ctx, stream, 0); err != nil || len(recs) > 0 {
		tb.Fatalf("%s: the stream %q must be empty before the scenario, and holds %d events (%v): give each scenario a store over an empty database",
			d.name(), stream, len(recs), err)
	}
	appended, err := appendFacts(ctx, store, st, streamOf)
	if err != nil {
		tb.Fatalf("%s: %v", d.name(), err)
	}

	// The context as the dispatch will read it.
	var context []eventstore.RawRecord
	if h.Query != nil {
		res, err := store.Read(ctx, h.Query(d.cmd))
		if err != nil {
			tb.Fatalf("%s: error reading the query: %v", d.name(), err)
		}
		context = res.Records
		sel := positions(context)
		selected := make([]bool, len(appended))
		for i, r := range appended {
			selected[i] = sel[r.Position]
		}
		if msg := selection(st, selected, h.Query(d.cmd), "the decision", decisionCost); msg != "" {
			tb.Errorf("%s: %s", d.name(), msg)
		}
	} else if context, _, err = store.ReadStream(ctx, stream, 0); err != nil {
		tb.Fatalf("%s: error reading the stream: %v", d.name(), err)
	}

	res, err := eventstore.Dispatch(ctx, store, h, d.cmd, nil)
	out := &decided[E]{}
	var rejected *eventstore.RejectedError
	switch {
	case errors.As(err, &rejected):
		out.rejected = rejected.Err
	case err != nil:
		tb.Errorf("%s: the dispatch failed: %v", d.name(), err)
		return nil
	case len(res.Records) > 0:
		ps := make([]eventstore.Position, len(res.Records))
		for i, r := range res.Records {
			ps[i] = r.Position
		}
		// Read back what was stored: the round trip goes through PostgreSQL.
		back, err := store.ReadPositions(ctx, ps...)
		if err != nil || len(back) != len(ps) {
			tb.Fatalf("%s: error reading back the appended events (%d of %d): %v", d.name(), len(back), len(ps), err)
		}
		for i, r := range back {
			out.add(res.Records[i].Event, eventstore.EventData{Type: r.Type, Version: r.Version, Tags: r.Tags, Metadata: r.Metadata, Data: r.Data})
		}
	}
	d.checkPure(out, context)
	d.checkRoundTrip(out)
	return out
}

// decide decodes the context, folds it and decides, as a dispatch does. It
// returns a description of what a dispatch would fail with instead.
func (d *Decision[C, E, S]) decide(context []eventstore.RawRecord) (*decided[E], string) {
	h := d.t.h
	recs, err := eventstore.Decode(h.Codec, context)
	if err != nil {
		return nil, fmt.Sprintf("the context does not decode, so the dispatch would fail: %v", err)
	}
	events := make([]E, len(recs))
	for i, r := range recs {
		events[i] = r.Event
	}
	decision, err := h.Decider.Decide(h.Decider.Fold(events), d.cmd)
	if err != nil {
		return &decided[E]{rejected: err}, ""
	}
	out := &decided[E]{}
	for i, e := range decision {
		data, err := h.Codec.Encode(e)
		if err != nil {
			return nil, fmt.Sprintf("error encoding decided event [%d], %s, so the dispatch would fail with an *eventstore.EncodeError: %v", i, describe(e), err)
		}
		out.add(e, data)
	}
	return out, ""
}

// checkPure decides again on the same context and reports a different
// outcome: a dispatch may run its decider more than once and keeps the
// attempt that commits, so an impure decider appends unpredictable facts.
func (d *Decision[C, E, S]) checkPure(out *decided[E], context []eventstore.RawRecord) {
	tb := d.t.tb
	tb.Helper()
	first := out.render()
	var second []string
	// Decided again several times: an impurity such as map iteration
	// order shows only in some runs, and one re-decision would miss it
	// half of the time.
	for range pureChecks {
		again, failure := d.decide(context)
		second = []string{failure}
		if again != nil {
			second = again.render()
		}
		if !sameLines(first, second) {
			break
		}
	}
	if !sameLines(first, second) {
		tb.Errorf("%s: the decider is not pure: deciding the same command on the same facts again gave another result (-first +again):\n%s\n"+
			"  A dispatch may decide more than once: take clocks, random numbers and new ids from the command,"+
			" and do not change state shared between runs (Initial must return fresh maps and slices).",
			d.name(), indent(strings.Split(diff(first, second), "\n"), "  "))
	}
}

// pureChecks is how many times checkPure decides again.
const pureChecks = 8

// checkRoundTrip decodes each decided event as stored and reports one that
// comes back different: whatever the codec drops or changes is lost for
// every decision and view that reads the event later.
func (d *Decision[C, E, S]) checkRoundTrip(out *decided[E]) {
	tb := d.t.tb
	tb.Helper()
	for i, data := range out.data {
		back, err := d.t.h.Codec.Decode(eventstore.RawRecord{Type: data.Type, Version: data.Version, Tags: data.Tags, Metadata: data.Metadata, Data: data.Data})
		if err != nil {
			tb.Errorf("%s: decided event [%d], %s, does not decode as stored, so every later read of it would fail: %v",
				d.name(), i, eventItem(data).oneLine(), err)
			continue
		}
		if !equal(out.events[i], back, cmpopts.EquateEmpty()) {
			tb.Errorf("%s: decided event [%d] does not survive its codec: stored and decoded it is\n    %#v\n  not\n    %#v\n"+
				"  The codec drops or changes a field (unexported, tagged json:\"-\", or read back differently), so later decisions and views never see it.",
				d.name(), i, back, out.events[i])
		}
	}
}

// equal compares Go values deeply, using Equal methods where types have
// them (a time.Time that went through a codec or PostgreSQL loses its
// monotonic reading and may change location, yet is the same instant) and
// looking into unexported fields, which a codec may silently drop.
func equal(a, b any, opts ...cmp.Option) bool {
	return cmp.Equal(a, b, append(opts, cmp.Exporter(func(reflect.Type) bool { return true }))...)
}
