package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
)

// fuzzLimits are small, so that the fuzzer reaches both sides of every
// limit with short inputs.
var fuzzLimits = eventstore.Limits{
	MaxTagsPerEvent:   2,
	MaxTagBytes:       24,
	MaxTypeBytes:      24,
	MaxStreamBytes:    24,
	MaxDataBytes:      64,
	MaxMetadataBytes:  48,
	MaxCommandIDBytes: 24,
}

// validName is the documented rule for types, tags, streams and command
// ids, written independently of the store's validation.
func validName(s string, limit int) bool {
	if s == "" || len(s) > limit || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// validMetadata is the documented rule for metadata: non-empty keys, valid
// UTF-8 without NUL, keys and values together within the limit.
func validMetadata(md eventstore.Metadata, limit int) bool {
	size := 0
	for k, v := range md {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return false
		}
		size += len(k) + len(v)
	}
	return size <= limit
}

// fieldIn reports whether field is one of the fields, or an element of one
// ("events[0].tags[1]" is in "events[0].tags").
func fieldIn(field string, fields []string) bool {
	for _, f := range fields {
		if field == f || strings.HasPrefix(field, f+"[") {
			return true
		}
	}
	return false
}

// FuzzValidateEvents appends one event built from fuzzed strings and bytes.
// Either the store refuses it with an *InvalidInputError naming a field
// that is invalid by the documented rules, and writes nothing; or every
// documented rule holds, the append commits, and the event reads back
// exactly as given: type, tags in order, version, metadata, data, stream,
// and a tag index that agrees with the tags.
func FuzzValidateEvents(f *testing.F) {
	// shape: bits 0-1 the tags (none, [a], [a b], [a b a]); bit 2 event
	// metadata {key: value}; bit 3 request metadata {key: value+"!"};
	// bit 4 nil data instead of empty.
	f.Add("TicketSold", "buyer-ada", "concert:1", "buyer:ada", "correlation_id", "wf-1", []byte(`{"seat":1}`), int64(1), uint8(2|4))
	f.Add("", "s", "a", "b", "k", "v", []byte{}, int64(0), uint8(0))
	f.Add("T", "", "a", "b", "k", "v", []byte{}, int64(0), uint8(0))
	f.Add("T", "s", "", "b", "k", "v", []byte(nil), int64(0), uint8(1|16))
	f.Add("T", "s", "a", "a", "k", "v", []byte{}, int64(0), uint8(2))
	f.Add("T", "s", "a", "b", "k", "v", []byte{}, int64(0), uint8(3))
	f.Add("T", "s", "a", "b", "k", "v", []byte{}, int64(-1), uint8(0))
	f.Add("T\x00", "s\n", "a\x1fb", "\x7f", "k\x00", "v\x00", []byte{0, 1, 2}, int64(0), uint8(1|4))
	f.Add("\xff", "\xc3\x28", "\xed\xa0\x80", "ok", "\xff", "\xfe", []byte{0xff}, int64(0), uint8(1|4))
	f.Add("'; DROP TABLE factos_events; --", "$1", "E'\\x00'", "%s", "\\u0000", "\"}", []byte("'\\"), int64(7), uint8(2|4|8))
	f.Add("\u202eevil\u200b", "\U0001F3AB", "\u00a0", "\ufeff", "\u2028", "\u2029", []byte("\u2028"), int64(2147483647), uint8(2|4|8))
	f.Add(strings.Repeat("t", 24), strings.Repeat("s", 24), strings.Repeat("g", 24), "b", "k", strings.Repeat("v", 47), make([]byte, 64), int64(0), uint8(1|4))
	f.Add(strings.Repeat("t", 25), strings.Repeat("s", 25), strings.Repeat("g", 25), "b", "k", strings.Repeat("v", 48), make([]byte, 65), int64(0), uint8(1|4))
	f.Add("T", "s", "a", "b", "", "v", []byte{}, int64(0), uint8(4))
	f.Add("T", "s", "a", "b", "k", "\t\r\x01\x1b", []byte{}, int64(0), uint8(8))
	f.Add("T", "s", "a", "b", "k", strings.Repeat("v", 47), []byte{}, int64(0), uint8(4|8))
	f.Add("T", "s", "a", "b", "k", "v", []byte{}, int64(1<<31), uint8(0))
	f.Add("T", "s", "a", "b", "k", "v", []byte{}, int64(1<<32), uint8(0))

	db := testdb.Lazy(f, nil)
	var (
		storeOnce sync.Once
		store     *eventstore.Store
		storeErr  error
	)
	f.Fuzz(func(t *testing.T, typ, stream, tagA, tagB, mdKey, mdVal string, data []byte, version int64, shape uint8) {
		ctx := context.Background()
		pool := db(t)
		storeOnce.Do(func() { store, storeErr = eventstore.New(pool, &eventstore.Config{Limits: fuzzLimits}) })
		if storeErr != nil {
			t.Fatal(storeErr)
		}
		l := store.Limits()

		ev := eventstore.EventData{Type: typ, Version: int(version), Data: data}
		switch shape & 3 {
		case 1:
			ev.Tags = []string{tagA}
		case 2:
			ev.Tags = []string{tagA, tagB}
		case 3:
			ev.Tags = []string{tagA, tagB, tagA}
		}
		var reqMD eventstore.Metadata
		if shape&4 != 0 {
			ev.Metadata = eventstore.Metadata{mdKey: mdVal}
		}
		if shape&8 != 0 {
			reqMD = eventstore.Metadata{mdKey: mdVal + "!"}
		}
		if shape&16 != 0 && len(data) == 0 {
			ev.Data = nil
		}
		merged := maps.Clone(ev.Metadata)
		if len(reqMD) > 0 {
			if merged == nil {
				merged = eventstore.Metadata{}
			}
			maps.Copy(merged, reqMD)
		}

		// The fields that break a documented rule.
		var invalid []string
		if !validName(stream, l.MaxStreamBytes) {
			invalid = append(invalid, "stream")
		}
		if !validMetadata(reqMD, l.MaxMetadataBytes) {
			invalid = append(invalid, "metadata")
		}
		if !validName(typ, l.MaxTypeBytes) {
			invalid = append(invalid, "events[0].type")
		}
		if version < 0 || version > eventstore.MaxVersion {
			invalid = append(invalid, "events[0].version")
		}
		tagsOK := len(ev.Tags) <= l.MaxTagsPerEvent
		for i, tag := range ev.Tags {
			tagsOK = tagsOK && validName(tag, l.MaxTagBytes) && !slices.Contains(ev.Tags[:i], tag)
		}
		if !tagsOK {
			invalid = append(invalid, "events[0].tags")
		}
		if len(data) > l.MaxDataBytes {
			invalid = append(invalid, "events[0].data")
		}
		if !validMetadata(merged, l.MaxMetadataBytes) {
			invalid = append(invalid, "events[0].metadata")
		}

		var head int64
		if validName(stream, l.MaxStreamBytes) {
			var err error
			if _, head, err = store.ReadStream(ctx, stream, 0); err != nil {
				t.Fatalf("reading the stream head: %v", err)
			}
		}
		before := rowCounts(t, pool)
		res, err := store.Append(ctx, eventstore.AppendRequest{Stream: stream, Events: []eventstore.EventData{ev}, Metadata: reqMD})
		after := rowCounts(t, pool)

		if err != nil {
			var inv *eventstore.InvalidInputError
			if !errors.As(err, &inv) || !errors.Is(err, eventstore.ErrInvalidInput) || errors.Is(err, eventstore.ErrStore) {
				t.Fatalf("append failed with %T %v, want an *InvalidInputError (invalid fields by the rules: %q)", err, err, invalid)
			}
			if !fieldIn(inv.Field, invalid) {
				t.Fatalf("refused naming field %q (%v), but the invalid fields by the rules are %q", inv.Field, err, invalid)
			}
			if after != before {
				t.Fatalf("refused append wrote rows: %+v -> %+v", before, after)
			}
			return
		}
		if len(invalid) > 0 {
			t.Fatalf("append accepted although %q break the rules", invalid)
		}
		want := before
		want.events++
		want.tags += len(ev.Tags)
		if after != want {
			t.Fatalf("rows %+v -> %+v, want %+v", before, after, want)
		}
		if len(res.Records) != 1 || res.Revision != head+1 {
			t.Fatalf("result %+v, want one record at revision %d", res, head+1)
		}
		checkRecord(t, "returned", res.Records[0], stream, ev, merged)

		got, _, err := store.ReadStream(ctx, stream, head)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Position != res.Records[0].Position || got[0].Revision != head+1 || got[0].ID != res.Records[0].ID {
			t.Fatalf("stream %q after revision %d reads %+v, want the appended record %+v", stream, head, got, res.Records[0])
		}
		checkRecord(t, "stored", got[0], stream, ev, merged)

		// The tag index holds the same tags and type.
		var indexed []string
		if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(tag ORDER BY tag COLLATE "C"), '{}') FROM factos_event_tags WHERE position = $1 AND type = $2`,
			int64(got[0].Position), typ).Scan(&indexed); err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(ev.Tags)
		slices.Sort(sorted)
		if !slices.Equal(indexed, sorted) && !(len(indexed) == 0 && len(sorted) == 0) {
			t.Fatalf("tag index %q, want %q", indexed, sorted)
		}

		// And a query by the exact type and tags finds the event first.
		q := eventstore.NewQuery(eventstore.TypesAndTags([]string{typ}, ev.Tags...))
		page, err := store.ReadAfter(ctx, got[0].Position-1, &eventstore.ReadAfterOpts{Query: &q, Limit: 1})
		if err != nil {
			t.Fatalf("ReadAfter(%s): %v", q, err)
		}
		if len(page.Records) != 1 || page.Records[0].Position != got[0].Position {
			t.Fatalf("ReadAfter(%s) = %+v, want position %d", q, page.Records, got[0].Position)
		}
	})
}

type tableRows struct{ events, tags, commands int }

func rowCounts(t *testing.T, pool *pgxpool.Pool) tableRows {
	t.Helper()
	var c tableRows
	err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM factos_events), (SELECT count(*) FROM factos_event_tags), (SELECT count(*) FROM factos_commands)`).
		Scan(&c.events, &c.tags, &c.commands)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRecord compares a record with the event it was appended as.
func checkRecord(t *testing.T, what string, r eventstore.RawRecord, stream string, ev eventstore.EventData, md eventstore.Metadata) {
	t.Helper()
	var diffs []string
	if r.Stream != stream {
		diffs = append(diffs, fmt.Sprintf("stream %q, want %q", r.Stream, stream))
	}
	if r.Type != ev.Type {
		diffs = append(diffs, fmt.Sprintf("type %q, want %q", r.Type, ev.Type))
	}
	if r.Version != ev.Version {
		diffs = append(diffs, fmt.Sprintf("version %d, want %d", r.Version, ev.Version))
	}
	if !slices.Equal(r.Tags, ev.Tags) {
		diffs = append(diffs, fmt.Sprintf("tags %q, want %q", r.Tags, ev.Tags))
	}
	if !maps.Equal(r.Metadata, md) {
		diffs = append(diffs, fmt.Sprintf("metadata %q, want %q", r.Metadata, md))
	}
	if !bytes.Equal(r.Data, ev.Data) {
		diffs = append(diffs, fmt.Sprintf("data %q, want %q", r.Data, ev.Data))
	}
	if len(diffs) > 0 {
		t.Fatalf("%s record differs: %s", what, strings.Join(diffs, "; "))
	}
}
