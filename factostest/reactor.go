package factostest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
)

// ReactorTest is a reactor as it is registered (reactors.AddReactor), ready
// to be given a record.
type ReactorTest[E any] struct {
	tb testing.TB
	r  reactors.Reactor[E]
}

// ForReactor starts the scenarios of reactor r, reported to tb. It checks r
// as reactors.AddReactor does:
//
//	announce := factostest.ForReactor(t, tickets.AnnounceSalesReactor(codec))
//	sold := announce.Given(tickets.TicketSold{ConcertID: "c1", BuyerID: "ada", Seat: 1})
//	sold.Then(eventstore.PlannedEffect{Kind: tickets.EffectAnnounceTicketSale, Key: "announce-sale:" + sold.Record().ID.String(), OrderingKey: "buyer:ada", Args: ...})
func ForReactor[E any](tb testing.TB, r reactors.Reactor[E]) *ReactorTest[E] {
	tb.Helper()
	if err := reactors.AddReactor(reactors.NewRegistry(nil), r); err != nil {
		tb.Fatalf("factostest: ForReactor: %v", err)
	}
	return &ReactorTest[E]{tb: tb, r: r}
}

// Given builds the committed record of event, encoded with the reactor's
// codec and decoded again as the reaction worker does, at position 1 of
// stream "factostest" with the id Record reports.
func (t *ReactorTest[E]) Given(event E) *Reaction[E] {
	t.tb.Helper()
	data, err := t.r.Codec.Encode(event)
	if err != nil {
		t.tb.Fatalf("factostest: reactor %s: error encoding the given event, %s: %v", t.r.Name, describe(event), err)
	}
	return t.GivenData(data)
}

// GivenData builds the committed record of an event as stored, for
// example a payload an older release wrote; its ID and Metadata are kept.
func (t *ReactorTest[E]) GivenData(data eventstore.EventData) *Reaction[E] {
	t.tb.Helper()
	st, _ := facts[E]{}.withData([]eventstore.EventData{data}).encode(t.r.Codec) // data is not encoded: no error
	raw := records(st, func(role) string { return "factostest" })[0]
	rx := &Reaction[E]{t: t, raw: raw}
	rx.rec.RawRecord = raw
	rx.rec.Event, rx.decodeErr = t.r.Codec.Decode(raw)
	if rx.decodeErr != nil {
		rx.decodeErr = &eventstore.DecodeError{Position: raw.Position, Type: raw.Type, Version: raw.Version, Err: rx.decodeErr}
	}
	return rx
}

// Reaction is a record given to a reactor, ready to be checked with Then or
// ThenError.
type Reaction[E any] struct {
	t         *ReactorTest[E]
	raw       eventstore.RawRecord
	rec       eventstore.Record[E]
	decodeErr error
}

// Record is the record the reactor receives, for building the expected
// effects (their keys usually derive from its ID).
func (rx *Reaction[E]) Record() eventstore.Record[E] { return rx.rec }

// Then checks that the reactor plans exactly effects, in order (none: it
// plans nothing). Effects are compared as their River jobs carry them:
// kind, key, ordering key and args encoded as JSON. A record the
// reactor's subscription does not select is never delivered to it, so it
// plans nothing.
func (rx *Reaction[E]) Then(effects ...eventstore.PlannedEffect) {
	tb := rx.t.tb
	tb.Helper()
	want := make([]item, len(effects))
	for i, e := range effects {
		it, err := effectItem(e)
		if err != nil {
			tb.Fatalf("%s: error encoding the args of the expected effect [%d]: %v", rx.name(), i, err)
		}
		want[i] = it
	}
	if !rx.subscribed() {
		if len(want) > 0 {
			tb.Errorf("%s: %s; want effects:\n%s", rx.name(), rx.unsubscribed(), indent(renderItems(want), "    "))
		}
		return
	}
	got, err := rx.react()
	switch {
	case err != nil:
		tb.Errorf("%s: the reaction fails, so River would retry it: %v; want effects:\n%s", rx.name(), err, indent(renderItems(want), "    "))
	case got != nil:
		if w, g := renderItems(want), renderItems(got); !sameLines(w, g) {
			tb.Errorf("%s: planned effects differ (-want +got):\n%s", rx.name(), indent(strings.Split(diff(w, g), "\n"), "  "))
		}
	}
}

// ThenError checks that the reaction fails with an error matching target
// (errors.Is). River retries a failed reaction; a record that does not
// decode fails it with an *eventstore.DecodeError (eventstore.ErrDecode).
func (rx *Reaction[E]) ThenError(target error) {
	tb := rx.t.tb
	tb.Helper()
	if target == nil {
		tb.Fatalf("%s: ThenError(nil): name the error the reaction must fail with (Then() checks a reaction that plans nothing)", rx.name())
	}
	if !rx.subscribed() {
		tb.Errorf("%s: %s; want the error %q", rx.name(), rx.unsubscribed(), target)
		return
	}
	got, err := rx.react()
	switch {
	case err == nil && got != nil:
		tb.Errorf("%s: want an error matching %q, but the reactor planned %d effect(s):\n%s", rx.name(), target, len(got), indent(renderItems(got), "    "))
	case err != nil && !errors.Is(err, target):
		tb.Errorf("%s: the reaction failed with %q, want an error matching %q (errors.Is)", rx.name(), err, target)
	}
}

func (rx *Reaction[E]) name() string {
	return fmt.Sprintf("factostest: reactor %s given %s", rx.t.r.Name, eventItem(eventstore.EventData{
		Type: rx.raw.Type, Version: rx.raw.Version, Tags: rx.raw.Tags, Metadata: rx.raw.Metadata, Data: rx.raw.Data}).oneLine())
}

func (rx *Reaction[E]) subscribed() bool {
	return rx.t.r.Subscribe.Matches(rx.raw.Type, rx.raw.Tags)
}

func (rx *Reaction[E]) unsubscribed() string {
	return fmt.Sprintf("the reactor's subscription %s does not select this record, so in production it never receives it and plans nothing", rx.t.r.Subscribe)
}

// react runs the reactor as the reaction worker does: it returns the
// reaction's error, or the effects, reporting what the worker would refuse
// or what a second run changes. Nil effects and a nil error mean a
// failure was reported.
func (rx *Reaction[E]) react() ([]item, error) {
	tb := rx.t.tb
	tb.Helper()
	if rx.decodeErr != nil {
		return nil, rx.decodeErr
	}
	run := func() (_ []item, _ string, err error) {
		// A reactor's panic is its error, as in the reaction worker.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		effects, err := rx.t.r.React(rx.rec)
		if err != nil {
			return nil, "", err
		}
		items := make([]item, len(effects))
		keys := map[string]int{}
		for i, e := range effects {
			if e.Key == "" {
				return nil, fmt.Sprintf("effect [%d] (%s) has no key, so the reaction would fail: derive one from the record's ID", i, e.Kind), nil
			}
			if err := e.Validate(); err != nil {
				return nil, fmt.Sprintf("effect [%d] (%s) would be refused, so the reaction would fail: %v", i, e.Kind, err), nil
			}
			if j, dup := keys[e.Key]; dup {
				return nil, fmt.Sprintf("effects [%d] and [%d] share the key %q, so only the first would run: an effect key names one effect", j, i, e.Key), nil
			}
			keys[e.Key] = i
			it, err := effectItem(e)
			if err != nil {
				return nil, fmt.Sprintf("the args of effect [%d] (%s) cannot be encoded as JSON, so the reaction would fail: %v", i, e.Kind, err), nil
			}
			items[i] = it
		}
		return items, "", nil
	}
	first, problem, err := run()
	if problem != "" {
		tb.Errorf("%s: %s", rx.name(), problem)
		return nil, nil
	}
	second, _, err2 := run()
	render := func(items []item, err error) []string {
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		return renderItems(items)
	}
	if a, b := render(first, err), render(second, err2); !sameLines(a, b) {
		tb.Errorf("%s: the reactor is not pure: reacting to the same record again gave another result (-first +again):\n%s\n"+
			"  A reaction may run more than once (retries, replays): derive keys and args from the record alone.",
			rx.name(), indent(strings.Split(diff(a, b), "\n"), "  "))
	}
	if err != nil {
		return nil, err
	}
	if first == nil {
		first = []item{}
	}
	return first, nil
}
