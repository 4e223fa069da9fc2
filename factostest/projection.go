package factostest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// Projection builds a view of type V from the records it reads, in
// position order. Fold makes one of an eventstore.View, a pure fold. A
// projection that writes tables is one too when it applies the records in
// a transaction, reads the view back and rolls back: the kit only needs
// records in and a view out.
type Projection[E, V any] func(ctx context.Context, records []eventstore.Record[E]) (V, error)

// Fold is the Projection of view: eventstore.View.Fold, which never fails.
func Fold[E, S any](view eventstore.View[E, S]) Projection[E, S] {
	return func(_ context.Context, records []eventstore.Record[E]) (S, error) {
		return view.Fold(records), nil
	}
}

// ProjectionOpts configure ForProjection and ForView. A nil
// *ProjectionOpts is valid.
type ProjectionOpts struct {
	// Query selects the records the projection reads in production, such
	// as the query given to eventstore.Project. Given facts must match it
	// and unrelated ones must not. Default: nil, every event.
	Query *eventstore.Query

	// Store, if set, appends each scenario's facts to this store and reads
	// the query back with the store's SQL, as eventstore.Project does, so
	// the query and the payloads' round trip through PostgreSQL are checked
	// too. Give each scenario a store over an empty database, or ids no
	// other scenario uses. Default: nil, in memory, no database.
	Store *eventstore.Store
}

// ProjectionTest is a projection with the facts given so far. ForProjection
// and ForView return one with none; Given, GivenData and Unrelated return
// copies with more.
type ProjectionTest[E, V any] struct {
	tb      testing.TB
	codec   eventstore.Codec[E]
	project Projection[E, V]
	query   eventstore.Query
	store   *eventstore.Store
	facts   facts[E]
}

// ForView starts the scenarios of a pure view, reported to tb:
//
//	sales := factostest.ForView(t, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Query: &q})
//	sales.Given(tickets.ConcertScheduled{ConcertID: "c1", Capacity: 2}).Then(tickets.SaleState{Capacity: 2, ...})
func ForView[E, S any](tb testing.TB, codec eventstore.Codec[E], view eventstore.View[E, S], opts *ProjectionOpts) *ProjectionTest[E, S] {
	tb.Helper()
	if view.Evolve == nil {
		tb.Fatalf("factostest: ForView: the view's Evolve is nil")
	}
	return ForProjection(tb, codec, Fold(view), opts)
}

// ForProjection starts the scenarios of projection p, whose records are
// decoded with codec, reported to tb.
func ForProjection[E, V any](tb testing.TB, codec eventstore.Codec[E], p Projection[E, V], opts *ProjectionOpts) *ProjectionTest[E, V] {
	tb.Helper()
	if codec == nil || p == nil {
		tb.Fatalf("factostest: ForProjection: the codec and the projection are required")
	}
	t := &ProjectionTest[E, V]{tb: tb, codec: codec, project: p, query: eventstore.AllEvents()}
	if opts != nil {
		if opts.Query != nil {
			t.query = *opts.Query
		}
		t.store = opts.Store
	}
	return t
}

// Given adds facts the view needs: its query must select every one.
func (t *ProjectionTest[E, V]) Given(events ...E) *ProjectionTest[E, V] {
	c := *t
	c.facts = t.facts.withEvents(given, events)
	return &c
}

// GivenData adds given facts as they are stored, for example payloads an
// older release wrote at an older version.
func (t *ProjectionTest[E, V]) GivenData(data ...eventstore.EventData) *ProjectionTest[E, V] {
	c := *t
	c.facts = t.facts.withData(data)
	return &c
}

// Unrelated adds facts that are stored but that the view must not read:
// its query must select none of them.
func (t *ProjectionTest[E, V]) Unrelated(events ...E) *ProjectionTest[E, V] {
	c := *t
	c.facts = t.facts.withEvents(unrelated, events)
	return &c
}

// Records are the records the projection receives in memory, for building
// an expected view from their positions, ids or times (see Epoch).
func (t *ProjectionTest[E, V]) Records() []eventstore.Record[E] {
	t.tb.Helper()
	st := t.encode()
	var raws []eventstore.RawRecord
	for _, r := range records(st, projectionStream) {
		if t.query.Matches(r.Type, r.Tags) {
			raws = append(raws, r)
		}
	}
	recs, err := eventstore.Decode(t.codec, raws)
	if err != nil {
		t.tb.Fatalf("%s: %v", t.name(), err)
	}
	return recs
}

// Then checks that the projection builds want from the given facts.
// Views are compared with their Equal methods where they have them (with
// a value receiver, func (V) Equal(V) bool: go-cmp does not use one on
// the pointer) and otherwise field by field, unexported fields included.
func (t *ProjectionTest[E, V]) Then(want V) {
	t.tb.Helper()
	t.run(func(got *projected[V]) {
		t.tb.Helper()
		switch {
		case got.err != nil:
			t.tb.Errorf("%s: the projection failed: %v; want the view:\n%s", t.name(), got.err, indent(valueLines(want), "    "))
		case !equal(want, got.view):
			w, g := valueLines(want), valueLines(got.view)
			if sameLines(w, g) {
				// The difference is in what JSON does not show.
				w, g = goLines(want), goLines(got.view)
			}
			t.tb.Errorf("%s: the view differs (-want +got):\n%s", t.name(), indent(strings.Split(diff(w, g), "\n"), "  "))
		}
	})
}

// ThenError checks that the projection fails with an error matching target
// (errors.Is). Records that do not decode fail it with an
// *eventstore.DecodeError (eventstore.ErrDecode), as in eventstore.Project.
func (t *ProjectionTest[E, V]) ThenError(target error) {
	t.tb.Helper()
	if target == nil {
		t.tb.Fatalf("%s: ThenError(nil): name the error the projection must fail with", t.name())
	}
	t.run(func(got *projected[V]) {
		t.tb.Helper()
		switch {
		case got.err == nil:
			t.tb.Errorf("%s: want an error matching %q, but the projection built the view:\n%s", t.name(), target, indent(valueLines(got.view), "    "))
		case !errors.Is(got.err, target):
			t.tb.Errorf("%s: the projection failed with %q, want an error matching %q (errors.Is)", t.name(), got.err, target)
		}
	})
}

func (t *ProjectionTest[E, V]) name() string {
	var v V
	return fmt.Sprintf("factostest: view %T", v)
}

func projectionStream(r role) string {
	if r == given {
		return GivenStream
	}
	return UnrelatedStream
}

func (t *ProjectionTest[E, V]) encode() []stored {
	t.tb.Helper()
	st, err := t.facts.encode(t.codec)
	if err != nil {
		t.tb.Fatalf("%s: %v", t.name(), err)
	}
	return st
}

// viewCost is what a needless selection costs a view.
const viewCost = "reads and folds them"

// projected is what a projection built, or how it failed.
type projected[V any] struct {
	view V
	err  error
}

func (p *projected[V]) lines() []string {
	if p.err != nil {
		return []string{"error: " + p.err.Error()}
	}
	return valueLines(p.view)
}

// run stores the facts, reads what the query selects, reports a query
// that selects other facts than the given ones, projects, has check judge
// the outcome, and projects again to report an impure projection.
func (t *ProjectionTest[E, V]) run(check func(*projected[V])) {
	tb := t.tb
	tb.Helper()
	st := t.encode()
	var read, all []eventstore.RawRecord
	if t.store != nil {
		ctx := tb.Context()
		if err := checkEmpty(ctx, t.store, t.query); err != nil {
			tb.Fatalf("%s: %v", t.name(), err)
		}
		var err error
		if all, err = appendFacts(ctx, t.store, st, projectionStream); err != nil {
			tb.Fatalf("%s: %v", t.name(), err)
		}
		res, err := t.store.Read(ctx, t.query)
		if err != nil {
			tb.Fatalf("%s: error reading the query: %v", t.name(), err)
		}
		read = res.Records
	} else {
		all = records(st, projectionStream)
		for _, r := range all {
			if t.query.Matches(r.Type, r.Tags) {
				read = append(read, r)
			}
		}
	}
	sel := positions(read)
	selected := make([]bool, len(all))
	for i, r := range all {
		selected[i] = sel[r.Position]
	}
	if msg := selection(st, selected, t.query, "the view", viewCost); msg != "" {
		tb.Errorf("%s: %s", t.name(), msg)
	}

	recs, err := eventstore.Decode(t.codec, read)
	if err != nil {
		check(&projected[V]{err: err})
		return
	}
	ctx := tb.Context()
	first := &projected[V]{}
	first.view, first.err = t.project(ctx, recs)
	// Render the first outcome before projecting again: a projection that
	// keeps state between runs changes it under our feet.
	a := first.lines()
	check(first)
	again := &projected[V]{}
	again.view, again.err = t.project(ctx, recs)
	b := again.lines()
	if sameLines(a, b) && first.err == nil && again.err == nil && !equal(first.view, again.view) {
		// The difference is in what JSON does not show.
		a, b = goLines(first.view), goLines(again.view)
	}
	if !sameLines(a, b) {
		tb.Errorf("%s: the projection is not pure: projecting the same records again built another view (-first +again):\n%s\n"+
			"  Views are rebuilt and replayed: Initial must return fresh maps and slices, and Evolve must depend on the record alone.",
			t.name(), indent(strings.Split(diff(a, b), "\n"), "  "))
	}
}
