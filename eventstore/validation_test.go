package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/factos-go/factos/eventstore"
)

// Every bad input is refused with an *InvalidInputError naming the field,
// before anything is written.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, &eventstore.Config{Limits: eventstore.Limits{MaxEventsPerDispatch: 5, MaxDataBytes: 64, MaxMetadataBytes: 32, MaxTagsPerEvent: 3}})
	b.list(t, "i1", 10)
	ok := func() eventstore.EventData {
		return eventstore.EventData{Type: "Ok", Tags: []string{"a"}, Data: []byte("{}")}
	}
	id := uuid.New()
	stored, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "taken", Events: []eventstore.EventData{ok()}})
	if err != nil {
		t.Fatal(err)
	}
	storedID := stored.Records[0].ID
	before := b.counts(t)

	cases := []struct {
		name  string
		field string
		req   func(r *eventstore.AppendRequest)
	}{
		{"empty stream", "stream", func(r *eventstore.AppendRequest) { r.Stream = "" }},
		{"long stream", "stream", func(r *eventstore.AppendRequest) { r.Stream = strings.Repeat("s", 257) }},
		{"stream with newline", "stream", func(r *eventstore.AppendRequest) { r.Stream = "a\nb" }},
		{"no events", "events", func(r *eventstore.AppendRequest) { r.Events = nil }},
		{"too many events", "events", func(r *eventstore.AppendRequest) {
			r.Events = []eventstore.EventData{ok(), ok(), ok(), ok(), ok(), ok()}
		}},
		{"empty type", "events[0].type", func(r *eventstore.AppendRequest) { r.Events[0].Type = "" }},
		{"long type", "events[0].type", func(r *eventstore.AppendRequest) { r.Events[0].Type = strings.Repeat("t", 257) }},
		{"type with NUL", "events[0].type", func(r *eventstore.AppendRequest) { r.Events[0].Type = "a\x00b" }},
		{"type not UTF-8", "events[0].type", func(r *eventstore.AppendRequest) { r.Events[0].Type = "a\xffb" }},
		{"negative version", "events[0].version", func(r *eventstore.AppendRequest) { r.Events[0].Version = -1 }},
		{"empty tag", "events[0].tags[1]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"a", ""} }},
		{"long tag", "events[0].tags[0]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{strings.Repeat("g", 257)} }},
		{"tag with separator", "events[0].tags[0]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"a\x1fb"} }},
		{"tag with DEL", "events[0].tags[0]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"a\x7f"} }},
		{"tag not UTF-8", "events[0].tags[0]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"\xc3\x28"} }},
		{"duplicate tag", "events[0].tags[1]", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"a", "a"} }},
		{"too many tags", "events[0].tags", func(r *eventstore.AppendRequest) { r.Events[0].Tags = []string{"a", "b", "c", "d"} }},
		{"oversized payload", "events[0].data", func(r *eventstore.AppendRequest) { r.Events[0].Data = make([]byte, 65) }},
		{"oversized metadata", "events[0].metadata", func(r *eventstore.AppendRequest) {
			r.Events[0].Metadata = eventstore.Metadata{"k": strings.Repeat("v", 40)}
		}},
		{"metadata with NUL", `events[0].metadata["k"]`, func(r *eventstore.AppendRequest) { r.Events[0].Metadata = eventstore.Metadata{"k": "a\x00"} }},
		{"metadata not UTF-8", `events[0].metadata["k"]`, func(r *eventstore.AppendRequest) { r.Events[0].Metadata = eventstore.Metadata{"k": "\xff"} }},
		{"metadata empty key", "events[0].metadata", func(r *eventstore.AppendRequest) { r.Events[0].Metadata = eventstore.Metadata{"": "v"} }},
		{"request metadata oversized", "metadata", func(r *eventstore.AppendRequest) { r.Metadata = eventstore.Metadata{"k": strings.Repeat("v", 40)} }},
		{"duplicate event ids", "events[1].id", func(r *eventstore.AppendRequest) {
			a, c := ok(), ok()
			a.ID, c.ID = id, id
			r.Events = []eventstore.EventData{a, c}
		}},
		{"event id already stored", "events.id", func(r *eventstore.AppendRequest) { r.Events[0].ID = storedID }},
		{"command id too long", "command id", func(r *eventstore.AppendRequest) {
			r.CommandID = strings.Repeat("c", eventstore.DefaultMaxCommandIDBytes+1)
		}},
		{"command id with tab", "command id", func(r *eventstore.AppendRequest) { r.CommandID = "a\tb" }},
		{"empty condition query", "condition.query", func(r *eventstore.AppendRequest) { r.Condition = &eventstore.AppendCondition{} }},
		{"negative expected revision", "expected revision", func(r *eventstore.AppendRequest) { r.ExpectedRevision = eventstore.Revision(-1) }},
		{"condition with empty tag", "condition.query.items[0].tags[0]", func(r *eventstore.AppendRequest) {
			r.Condition = eventstore.FailIfEventsMatch(eventstore.NewQuery(eventstore.Tags("")), nil)
		}},
		{"condition with empty type", "condition.query.items[0].types[0]", func(r *eventstore.AppendRequest) {
			r.Condition = eventstore.FailIfEventsMatch(eventstore.NewQuery(eventstore.Types("")), nil)
		}},
		{"condition with too many types", "condition.query.items[1].types", func(r *eventstore.AppendRequest) {
			types := make([]string, eventstore.DefaultMaxTypesPerQueryItem+1)
			for i := range types {
				types[i] = fmt.Sprint("T", i)
			}
			r.Condition = eventstore.FailIfEventsMatch(eventstore.NewQuery(eventstore.Types("A"), eventstore.Types(types...)), nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{ok()}}
			tc.req(&req)
			_, err := b.store.Append(b.ctx, req)
			var inv *eventstore.InvalidInputError
			if !errors.As(err, &inv) || !errors.Is(err, eventstore.ErrInvalidInput) {
				t.Fatalf("err = %v, want *InvalidInputError", err)
			}
			if inv.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", inv.Field, tc.field, err)
			}
			if after := b.counts(t); after != before {
				t.Errorf("rows changed: %+v -> %+v", before, after)
			}
		})
	}
}

// Decided events are validated too: a codec that produces a bad event
// fails the dispatch with nothing written.
func TestDecidedEventsAreValidated(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	before := b.counts(t)
	h := eventstore.Handler[string, fact, int]{
		Codec:  factCodec{},
		Stream: func(string) string { return "s" },
		Query:  func(string) eventstore.Query { return eventstore.NewQuery(eventstore.Tags("x")) },
		Decider: eventstore.Decider[string, fact, int]{
			Evolve: func(n int, _ fact) int { return n },
			Decide: func(_ int, tag string) ([]fact, error) { return []fact{{Type: "T", Tags: []string{tag}}}, nil },
		},
	}
	_, err := eventstore.Dispatch(b.ctx, b.store, h, "bad\x00tag", nil)
	var inv *eventstore.InvalidInputError
	if !errors.As(err, &inv) || inv.Field != "events[0].tags[0]" {
		t.Fatalf("err = %v, want invalid events[0].tags[0]", err)
	}
	if after := b.counts(t); after != before {
		t.Errorf("rows changed: %+v -> %+v", before, after)
	}

	// So is the handler's query. An empty one matches nothing, so nothing
	// could conflict with the decision: refused, with the ways to say
	// "every event" or "no event" in the message.
	h.Query = func(string) eventstore.Query { return eventstore.Query{} }
	_, err = eventstore.Dispatch(b.ctx, b.store, h, "ok", nil)
	if !errors.As(err, &inv) || inv.Field != "query" {
		t.Fatalf("err = %v, want invalid query", err)
	}
	for _, hint := range []string{"AllEvents()", "Handler.Query nil", "Append without a Condition"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("the empty-query error %q does not mention %s", err, hint)
		}
	}
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, cfg := range []*eventstore.Config{
		{LockStrategy: "global"},
		{LockStrategy: "serializable"},
		{MaxLockKeys: eventstore.MinLockKeys - 1},
		{MaxAttempts: -1},
		{Limits: eventstore.Limits{MaxTagBytes: -5}},
		// Beyond what an index entry holds: refused here rather than by
		// PostgreSQL at the first long tag, as a store failure.
		{Limits: eventstore.Limits{MaxTagBytes: eventstore.MaxIndexedBytes + 1}},
		{Limits: eventstore.Limits{MaxTypeBytes: 8000}},
		{Limits: eventstore.Limits{MaxStreamBytes: 8000}},
		{Limits: eventstore.Limits{MaxCommandIDBytes: 8000}},
		{Hooks: []eventstore.Hook{nil}},
	} {
		if _, err := eventstore.New(b.pool, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := eventstore.New(nil, nil); err == nil {
		t.Error("nil pool accepted")
	}
}

// Strings at MaxIndexedBytes, the highest limits a store accepts, fit the
// indexes that hold them: a tag's entry, which carries its event's type
// too, and the stream's, the type's and the command id's.
func TestLimitsAtMaxIndexedBytesFitTheIndexes(t *testing.T) {
	t.Parallel()
	const n = eventstore.MaxIndexedBytes
	store := setup(t, &eventstore.Config{Limits: eventstore.Limits{MaxTagBytes: n, MaxTypeBytes: n, MaxStreamBytes: n, MaxCommandIDBytes: n}}).store
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func() string { // incompressible, so no index entry is compressed below its size
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(33 + rnd.IntN(94))
		}
		return string(b)
	}
	_, err := store.Append(context.Background(), eventstore.AppendRequest{Stream: random(), CommandID: random(),
		Events: []eventstore.EventData{{Type: random(), Tags: []string{random(), random()}}}})
	if err != nil {
		t.Fatal(err)
	}
}
