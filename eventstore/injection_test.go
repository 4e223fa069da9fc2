package eventstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// hostile is an input meant to break out of an SQL literal, a format
// string, an array or JSON literal, a LIKE pattern, or a reader's eye. The
// store binds every value as a parameter, so none of them may change a
// statement: each either reads back byte for byte, or validation refuses it
// before anything reaches the database.
type hostile struct {
	name  string
	value string
	// asName: valid as a stream, type, tag or command id (non-empty, at
	// most 256 bytes, valid UTF-8, no control characters).
	asName bool
	// asMeta: valid as a metadata value, and as a key when non-empty
	// (valid UTF-8 without NUL, key and value together at most 16 KiB).
	asMeta bool
}

var hostileInputs = []hostile{
	{"single quote", "'", true, true},
	{"doubled quotes", "''", true, true},
	{"drop table", "'; DROP TABLE factos_events; --", true, true},
	{"always true", "x' OR '1'='1", true, true},
	{"union select", "') UNION SELECT position FROM factos_events --", true, true},
	{"stacked delete", "x'); DELETE FROM factos_events WHERE ('1'='1", true, true},
	{"placeholder", "$1", true, true},
	{"placeholder with cast", "$2::text[]", true, true},
	{"dollar quoting", "$$; TRUNCATE factos_commands; $$", true, true},
	{"format verbs", "%s%d%v%q%%%!", true, true},
	{"backslash", `\`, true, true},
	{"backslash quote", `\'`, true, true},
	{"escape string", `E'\x00'`, true, true},
	{"escape string, doubled", `E'\\x00'`, true, true},
	{"NUL escape as text", `\u0000`, true, true},
	{"octal escape as text", `\000`, true, true},
	{"array literal", `{a,"b",NULL}`, true, true},
	{"NULL", "NULL", true, true},
	{"JSON breakout", `"}, "injected": "`, true, true},
	{"comment", "/* x */ --", true, true},
	{"LIKE wildcards", "%_%", true, true},
	{"regex", ".*", true, true},
	{"semicolon", ";", true, true},
	{"markup", "<script>alert(1)</script>&amp;", true, true},
	{"right-to-left override", "\u202eevil", true, true},
	{"zero-width space", "a\u200bb", true, true},
	{"byte order mark", "\ufeffx", true, true},
	{"decomposed e acute (NFD)", "e\u0301", true, true},
	{"precomposed e acute (NFC)", "\u00e9", true, true},
	{"fullwidth apostrophe", "\uff07 OR 1=1", true, true},
	{"line separator", "a\u2028b", true, true},
	{"emoji", "\U0001F3AB", true, true},
	{"non-breaking space", "\u00a0", true, true},
	{"one space", " ", true, true},
	{"empty", "", false, true},
	{"NUL", "a\x00b", false, false},
	{"unit separator (the tag wire separator)", "a\x1fb", false, true},
	{"newline", "a\nb", false, true},
	{"DEL", "\x7f", false, true},
	{"C1 control NEL", "\u0085", false, true},
	{"invalid UTF-8", "\xff\xfe'", false, false},
	{"UTF-16 surrogate", "\xed\xa0\x80", false, false},
	{"overlong slash", "\xc0\xaf", false, false},
	{"256 bytes of quotes", strings.Repeat("'", 256), true, true},
	{"257 bytes of quotes", strings.Repeat("'", 257), false, true},
	{"256 bytes of 4-byte runes", strings.Repeat("\U0001F3AB", 64), true, true},
	{"260 bytes of 4-byte runes", strings.Repeat("\U0001F3AB", 65), false, true},
	// With the one-byte other half of the metadata pair ("k" or "v"),
	// 16383 bytes is exactly the metadata limit and 16384 one over.
	{"metadata at its limit", strings.Repeat(`\'`, 16383/2) + "'", false, true},
	{"metadata over its limit", strings.Repeat(`\'`, 16384/2), false, false},
	{"1 MiB of NULs and quotes", strings.Repeat("\x00'", 1<<19), false, false},
	{"1 MiB and one byte", strings.Repeat("\x00'", 1<<19) + "'", false, false},
}

// rawCodec passes EventData through unchanged, so that the test decides
// every field of what a dispatch writes.
type rawCodec struct{}

func (rawCodec) Encode(e eventstore.EventData) (eventstore.EventData, error) { return e, nil }
func (rawCodec) Decode(r eventstore.RawRecord) (eventstore.EventData, error) {
	return eventstore.EventData{ID: r.ID, Type: r.Type, Version: r.Version, Tags: r.Tags, Metadata: r.Metadata, Data: r.Data}, nil
}

// injCmd appends event to stream if the decision saw exactly seen events of
// its context: the query, or the stream's own events when query is nil.
type injCmd struct {
	stream string
	query  *eventstore.Query
	event  eventstore.EventData
	seen   int
}

var injDecider = eventstore.Decider[injCmd, eventstore.EventData, int]{
	Evolve: func(n int, _ eventstore.EventData) int { return n + 1 },
	Decide: func(n int, c injCmd) ([]eventstore.EventData, error) {
		if n != c.seen {
			return nil, fmt.Errorf("the decision saw %d events of its context, want %d", n, c.seen)
		}
		return []eventstore.EventData{c.event}, nil
	},
}

var (
	injByQuery = eventstore.Handler[injCmd, eventstore.EventData, int]{
		Decider: injDecider, Codec: rawCodec{},
		Stream: func(c injCmd) string { return c.stream },
		Query:  func(c injCmd) eventstore.Query { return *c.query },
	}
	injByStream = eventstore.Handler[injCmd, eventstore.EventData, int]{
		Decider: injDecider, Codec: rawCodec{},
		Stream: func(c injCmd) string { return c.stream },
	}
)

// injCase is one hostile input pushed through one field.
type injCase struct {
	t     *testing.T
	b     *bundle
	s     string
	tag   string  // a tag unique to this case, to find its events
	valid bool    // the field accepts s
	want  *counts // rows the database must hold, across the field's cases
}

// wrote checks a write: accepted, adding delta rows, when the input is
// valid; refused naming field, adding nothing, when it is not. It reports
// whether the write was accepted.
func (c *injCase) wrote(err error, field string, delta counts) bool {
	c.t.Helper()
	if c.valid {
		if err != nil {
			c.t.Fatalf("valid input refused: %v", err)
		}
		c.want.events += delta.events
		c.want.tags += delta.tags
		c.want.commands += delta.commands
	} else {
		c.refused(err, field)
	}
	c.rows()
	return c.valid
}

// refused checks that err is an *InvalidInputError for field (or an
// element of it) and that nothing was written.
func (c *injCase) refused(err error, field string) {
	c.t.Helper()
	var inv *eventstore.InvalidInputError
	if !errors.As(err, &inv) || !errors.Is(err, eventstore.ErrInvalidInput) {
		c.t.Fatalf("err = %v, want an *InvalidInputError for %s", err, field)
	}
	if !strings.HasPrefix(inv.Field, field) {
		c.t.Fatalf("refused naming %q (%v), want %s", inv.Field, err, field)
	}
	c.rows()
}

func (c *injCase) rows() {
	c.t.Helper()
	if got := c.b.counts(c.t); got != *c.want {
		c.t.Fatalf("rows %+v, want %+v", got, *c.want)
	}
}

func (c *injCase) append(req eventstore.AppendRequest) (*eventstore.AppendResult, error) {
	return c.b.store.Append(c.b.ctx, req)
}

// stored reads the stream back and checks it holds exactly ev, as given.
func (c *injCase) stored(stream string, res *eventstore.AppendResult, ev eventstore.EventData, md eventstore.Metadata) eventstore.RawRecord {
	c.t.Helper()
	checkRecord(c.t, "returned", res.Records[0], stream, ev, md)
	recs, _, err := c.b.store.ReadStream(c.b.ctx, stream, res.Records[0].Revision-1)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Position != res.Records[0].Position {
		c.t.Fatalf("stream %q reads %+v, want the appended record", stream, recs)
	}
	checkRecord(c.t, "stored", recs[0], stream, ev, md)
	return recs[0]
}

func positionsOf(recs []eventstore.RawRecord) []eventstore.Position {
	out := make([]eventstore.Position, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

// context checks that q, a query naming the hostile value, selects exactly
// the event at pos wherever a query is used: Read, ReadAfter (from the
// start, and from just before pos with a limit), an append condition
// (which must fail before pos and hold after it) and a dispatch's context.
func (c *injCase) context(q eventstore.Query, pos eventstore.Position) {
	c.t.Helper()
	ctx, want := c.b.ctx, []eventstore.Position{pos}
	res, err := c.b.store.Read(ctx, q)
	if err != nil {
		c.t.Fatalf("Read(%s): %v", q, err)
	}
	if got := positionsOf(res.Records); !slices.Equal(got, want) || res.After == nil || *res.After != pos {
		c.t.Fatalf("Read(%s) = %v, want %v", q, got, want)
	}
	for _, opts := range []struct {
		after eventstore.Position
		limit int
	}{{0, 0}, {pos - 1, 1}} {
		page, err := c.b.store.ReadAfter(ctx, opts.after, &eventstore.ReadAfterOpts{Query: &q, Limit: opts.limit})
		if err != nil {
			c.t.Fatalf("ReadAfter(%d, %s): %v", opts.after, q, err)
		}
		if got := positionsOf(page.Records); !slices.Equal(got, want) {
			c.t.Fatalf("ReadAfter(%d, %s) = %v, want %v", opts.after, q, got, want)
		}
	}

	guarded := eventstore.EventData{Type: "Guarded"}
	_, err = c.append(eventstore.AppendRequest{Stream: "guarded", Events: []eventstore.EventData{guarded}, Condition: eventstore.FailIfEventsMatch(q, nil)})
	if !errors.Is(err, eventstore.ErrConflict) {
		c.t.Fatalf("append guarded by %s before position %d: err = %v, want a conflict", q, pos, err)
	}
	c.rows()
	_, err = c.append(eventstore.AppendRequest{Stream: "guarded", Events: []eventstore.EventData{guarded}, Condition: eventstore.FailIfEventsMatch(q, &pos)})
	c.wrote(err, "", counts{events: 1})

	_, err = eventstore.Dispatch(ctx, c.b.store, injByQuery, injCmd{stream: "decided", query: &q, event: eventstore.EventData{Type: "Decided"}, seen: 1}, nil)
	c.wrote(err, "", counts{events: 1})
}

// contextRefused checks that every use of q, a query naming an invalid
// value, is refused naming field (relative to the query).
func (c *injCase) contextRefused(q eventstore.Query, field string) {
	c.t.Helper()
	ctx := c.b.ctx
	_, err := c.b.store.Read(ctx, q)
	c.refused(err, "query."+field)
	_, err = c.b.store.ReadAfter(ctx, 0, &eventstore.ReadAfterOpts{Query: &q})
	c.refused(err, "query."+field)
	_, err = c.append(eventstore.AppendRequest{Stream: "guarded", Events: []eventstore.EventData{{Type: "Guarded"}}, Condition: eventstore.FailIfEventsMatch(q, nil)})
	c.refused(err, "condition.query."+field)
	_, err = eventstore.Dispatch(ctx, c.b.store, injByQuery, injCmd{stream: "decided", query: &q, event: eventstore.EventData{Type: "Decided"}}, nil)
	c.refused(err, "query."+field)
}

// injTargets are the user-supplied fields, each with what it accepts and
// how a hostile value travels through it.
var injTargets = []struct {
	name  string
	valid func(h hostile) bool
	run   func(c *injCase)
}{
	{"stream", func(h hostile) bool { return h.asName }, func(c *injCase) {
		ev := eventstore.EventData{Type: "Injected", Tags: []string{c.tag}}
		res, err := c.append(eventstore.AppendRequest{Stream: c.s, Events: []eventstore.EventData{ev}})
		if !c.wrote(err, "stream", counts{events: 1, tags: 1}) {
			_, _, err := c.b.store.ReadStream(c.b.ctx, c.s, 0)
			c.refused(err, "stream")
			_, err = eventstore.Dispatch(c.b.ctx, c.b.store, injByStream, injCmd{stream: c.s, event: ev}, nil)
			c.refused(err, "stream")
			return
		}
		c.stored(c.s, res, ev, nil)
		// A stream-revision dispatch reads the stream by name, sees the
		// one event, and appends at revision 2.
		r, err := eventstore.Dispatch(c.b.ctx, c.b.store, injByStream, injCmd{stream: c.s, event: eventstore.EventData{Type: "Next"}, seen: 1}, nil)
		c.wrote(err, "", counts{events: 1})
		if r.Revision != 2 || r.Records[0].Stream != c.s {
			c.t.Fatalf("stream dispatch appended %+v", r.Records[0].RawRecord)
		}
		// And the query by the case's tag finds the event in that stream.
		got, err := c.b.store.Read(c.b.ctx, eventstore.NewQuery(eventstore.Tags(c.tag)))
		if err != nil || len(got.Records) != 1 || got.Records[0].Stream != c.s {
			c.t.Fatalf("Read(tag %s) = %+v, %v", c.tag, got, err)
		}
	}},
	{"type", func(h hostile) bool { return h.asName }, func(c *injCase) {
		ev := eventstore.EventData{Type: c.s, Tags: []string{c.tag}}
		res, err := c.append(eventstore.AppendRequest{Stream: "types", Events: []eventstore.EventData{ev}})
		q := eventstore.NewQuery(eventstore.Types(c.s))
		if !c.wrote(err, "events[0].type", counts{events: 1, tags: 1}) {
			c.contextRefused(q, "items[0].types[0]")
			return
		}
		pos := c.stored("types", res, ev, nil).Position
		c.context(q, pos)
		c.context(eventstore.NewQuery(eventstore.TypesAndTags([]string{c.s, "Other"}, c.tag)), pos)
	}},
	{"tag", func(h hostile) bool { return h.asName }, func(c *injCase) {
		ev := eventstore.EventData{Type: "Tagged", Tags: []string{c.s, c.tag}}
		res, err := c.append(eventstore.AppendRequest{Stream: "tags", Events: []eventstore.EventData{ev}})
		if !c.wrote(err, "events[0].tags[0]", counts{events: 1, tags: 2}) {
			c.contextRefused(eventstore.NewQuery(eventstore.Tags(c.s)), "items[0].tags[0]")
			c.contextRefused(eventstore.NewQuery(eventstore.TypesAndTags([]string{"Tagged"}, c.tag, c.s)), "items[0].tags[1]")
			return
		}
		pos := c.stored("tags", res, ev, nil).Position
		c.context(eventstore.NewQuery(eventstore.Tags(c.s)), pos)
		// Several tags: one drives the scan, the others are probed.
		c.context(eventstore.NewQuery(eventstore.Tags(c.tag, c.s)), pos)
		c.context(eventstore.NewQuery(eventstore.TypesAndTags([]string{"Tagged"}, c.s)), pos)
	}},
	{"metadata key", func(h hostile) bool { return h.asMeta && h.value != "" }, func(c *injCase) {
		md := eventstore.Metadata{c.s: "v"}
		ev := eventstore.EventData{Type: "Meta", Metadata: md}
		res, err := c.append(eventstore.AppendRequest{Stream: "metadata", Events: []eventstore.EventData{ev}})
		if c.wrote(err, "events[0].metadata", counts{events: 1}) {
			c.stored("metadata", res, ev, md)
		}
	}},
	{"metadata value", func(h hostile) bool { return h.asMeta }, func(c *injCase) {
		md := eventstore.Metadata{"k": c.s}
		ev := eventstore.EventData{Type: "Meta", Metadata: md}
		res, err := c.append(eventstore.AppendRequest{Stream: "metadata", Events: []eventstore.EventData{ev}})
		if c.wrote(err, "events[0].metadata", counts{events: 1}) {
			c.stored("metadata", res, ev, md)
		}
		// The same value as dispatch metadata, merged into the decided
		// event.
		plain := eventstore.EventData{Type: "Meta"}
		r, err := eventstore.Dispatch(c.b.ctx, c.b.store, injByStream, injCmd{stream: "dispatch-metadata-" + c.tag, event: plain}, &eventstore.DispatchOpts{Metadata: md})
		if c.wrote(err, "metadata", counts{events: 1}) {
			c.stored(r.Records[0].Stream, &eventstore.AppendResult{Records: []eventstore.RawRecord{r.Records[0].RawRecord}}, plain, md)
		}
	}},
	{"command id", func(h hostile) bool { return h.asName || h.value == "" }, func(c *injCase) {
		ev := eventstore.EventData{Type: "Commanded", Tags: []string{c.tag}}
		res, err := c.append(eventstore.AppendRequest{Stream: "commands", Events: []eventstore.EventData{ev}, CommandID: c.s})
		delta := counts{events: 1, tags: 1, commands: 1}
		if c.s == "" {
			delta.commands = 0 // no id: nothing to remember
		}
		if !c.wrote(err, "command id", delta) || c.s == "" {
			return
		}
		c.stored("commands", res, ev, nil)
		var stream string
		var positions []int64
		if err := c.b.pool.QueryRow(c.b.ctx, `SELECT stream, positions FROM factos_commands WHERE id = $1`, c.s).Scan(&stream, &positions); err != nil {
			c.t.Fatal(err)
		}
		if stream != "commands" || !slices.Equal(positions, []int64{int64(res.Records[0].Position)}) {
			c.t.Fatalf("command ledger holds %q %v", stream, positions)
		}
		// A retry with the id answers with the first append's records.
		again, err := c.append(eventstore.AppendRequest{Stream: "commands", Events: []eventstore.EventData{{Type: "Other"}}, CommandID: c.s})
		c.wrote(err, "", counts{})
		if !again.Duplicate || !slices.Equal(positionsOf(again.Records), positionsOf(res.Records)) {
			c.t.Fatalf("retry answered %+v, want the duplicate of %v", again, positionsOf(res.Records))
		}
		// Reused for another stream, the id belongs to another command.
		_, err = eventstore.Dispatch(c.b.ctx, c.b.store, injByStream, injCmd{stream: "elsewhere", event: ev}, &eventstore.DispatchOpts{CommandID: c.s})
		var reused *eventstore.CommandIDReusedError
		if !errors.As(err, &reused) || reused.CommandID != c.s || !errors.Is(err, eventstore.ErrCommandIDReused) {
			c.t.Fatalf("err = %v, want a *CommandIDReusedError", err)
		}
		c.rows()
	}},
	{"data", func(h hostile) bool { return len(h.value) <= eventstore.DefaultMaxDataBytes }, func(c *injCase) {
		ev := eventstore.EventData{Type: "Data", Data: []byte(c.s)}
		res, err := c.append(eventstore.AppendRequest{Stream: "data", Events: []eventstore.EventData{ev}})
		if c.wrote(err, "events[0].data", counts{events: 1}) {
			if rec := c.stored("data", res, ev, nil); !bytes.Equal(rec.Data, []byte(c.s)) {
				c.t.Fatalf("data differs")
			}
		}
	}},
}

// Hostile strings through every user-supplied field: each is stored and
// read back exactly, and selects exactly its own events in every kind of
// query, or is refused with an *InvalidInputError before anything is
// written. Afterwards every table is still there and holds the rows the
// accepted writes account for.
func TestHostileInputIsBoundOrRefused(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, h := range hostileInputs {
		if other, dup := seen[h.value]; dup {
			t.Fatalf("hostile inputs %q and %q are equal: a query for one would find both", h.name, other)
		}
		seen[h.value] = h.name
	}
	for _, target := range injTargets {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			// One database per field, so that the field's row counts are
			// exact; the cases share it, so a query for one hostile value
			// must also not find the events of the others.
			// Every name field at the same limit (command ids default to
			// more, for Temporal's long workflow ids), so that one
			// hostile value is a valid name or not for all of them.
			b := setup(t, &eventstore.Config{Limits: eventstore.Limits{MaxCommandIDBytes: eventstore.DefaultMaxTagBytes}})
			want := b.counts(t)
			for i, h := range hostileInputs {
				t.Run(h.name, func(t *testing.T) {
					target.run(&injCase{t: t, b: b, s: h.value, tag: fmt.Sprintf("case:%d", i), valid: target.valid(h), want: &want})
				})
			}
			checkSchemaIntact(t, b)
			if got := b.counts(t); got != want {
				t.Errorf("rows %+v, want %+v", got, want)
			}
		})
	}
}

// checkSchemaIntact checks that every table of the store, the reactors and
// River, and the append-only triggers, still exist.
func checkSchemaIntact(t *testing.T, b *bundle) {
	t.Helper()
	tables := []string{"factos_events", "factos_event_tags", "factos_commands", "factos_reactions", "factos_effects",
		"factos_replays", "factos_migrations", "river_job", "river_leader", "river_queue", "river_migration", "river_notification"}
	var missing []string
	if err := b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg(t ORDER BY t), '{}') FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL`, tables).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("tables missing: %v", missing)
	}
	var triggers []string
	if err := b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg(tgname::text ORDER BY tgname), '{}') FROM pg_trigger WHERE tgname LIKE 'factos\_%' AND tgenabled <> 'D'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	want := []string{"factos_event_tags_append_only", "factos_event_tags_no_truncate", "factos_events_append_only", "factos_events_no_truncate"}
	if !slices.Equal(triggers, want) {
		t.Errorf("enabled append-only triggers %v, want %v", triggers, want)
	}
}
