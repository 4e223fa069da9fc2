package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/internal/testdb"
)

// Vocabularies of the matcher fuzz test: the usual names, and names that
// mean something to SQL, LIKE, array literals or humans.
var (
	fuzzTypes = []string{"T0", "T1", "T2", "T3", "T%", "T_", "t0", "T0 ", "'T0'"}
	fuzzTags  = []string{"g0", "g1", "g2", "g3", "g4", "g5", "g%", "g_", "G0", "g0\u200b", "'", "\\", "g0,g1", "{g0}", `"g0"`, "NULL", " "}
)

// fuzzInput decodes fuzz bytes. It never fails: missing bytes read as 0.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// name picks a word of vocab, or (for bytes from 0xF0 up) takes the next
// few bytes verbatim, which may be any string at all.
func (in *fuzzInput) name(vocab []string) string {
	c := in.byte()
	if c < 0xF0 {
		return vocab[int(c)%len(vocab)]
	}
	n := min(int(in.byte()%32), len(in.b))
	s := string(in.b[:n])
	in.b = in.b[n:]
	return s
}

// event decodes an event, leaving out what validation would refuse so that
// it can be stored.
func (in *fuzzInput) event() EventData {
	ev := EventData{Type: in.name(fuzzTypes)}
	if checkName("type", ev.Type, DefaultMaxTypeBytes) != nil {
		ev.Type = "T0"
	}
	for range in.byte() % 5 {
		tag := in.name(fuzzTags)
		if checkName("tag", tag, DefaultMaxTagBytes) == nil && !slices.Contains(ev.Tags, tag) {
			ev.Tags = append(ev.Tags, tag)
		}
	}
	return ev
}

// query decodes a query; its names may be invalid.
func (in *fuzzInput) query() Query {
	if in.byte() == 0xFF {
		return AllEvents()
	}
	var q Query
	for range 1 + in.byte()%3 {
		var it QueryItem
		for range in.byte() % 3 {
			it.Types = append(it.Types, in.name(fuzzTypes))
		}
		for range in.byte() % 4 {
			it.Tags = append(it.Tags, in.name(fuzzTags))
		}
		q.Items = append(q.Items, it)
	}
	return q
}

// fuzzMatchDB is the matcher fuzz test's database: events stored once, and
// the records Go compares the SQL's answers with.
type fuzzMatchDB struct {
	store  *Store
	stored []RawRecord
	n      int // iterations so far, for unique stream names
}

// fuzzStoredCap bounds the events the fuzz iterations add, so that reads
// stay fast however long the fuzzer runs.
const fuzzStoredCap = 600

func (d *fuzzMatchDB) init(ctx context.Context, pool *pgxpool.Pool) error {
	var err error
	if d.store, err = New(pool, nil); err != nil {
		return err
	}
	// The same events on every run: fixed seeds.
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 30 {
		var events []EventData
		for range 1 + rng.IntN(5) {
			ev := EventData{Type: fuzzTypes[rng.IntN(len(fuzzTypes))]}
			for _, j := range rng.Perm(len(fuzzTags))[:rng.IntN(4)] {
				ev.Tags = append(ev.Tags, fuzzTags[j])
			}
			events = append(events, ev)
		}
		res, err := d.store.Append(ctx, AppendRequest{Stream: fmt.Sprint("fixed-", i), Events: events})
		if err != nil {
			return err
		}
		d.stored = append(d.stored, res.Records...)
	}
	return nil
}

// FuzzQueryMatchesSQL is TestSQLMatchesAgreeWithGo driven by the fuzzer:
// the bytes decode into a few more events to store (while the database is
// small) and a query with an after position and a limit. The store's SQL
// must answer exactly what Query.Matches says for ReadAfter, Read and the
// append condition; a query that validation refuses must be refused, with
// an *InvalidInputError, by every path.
func FuzzQueryMatchesSQL(f *testing.F) {
	type ev struct {
		typ  string
		tags []string
	}
	for _, seed := range []struct {
		events       []ev
		after, limit byte
		q            Query
	}{
		{nil, 0, 0, AllEvents()},
		{[]ev{{"T0", []string{"g0", "g1"}}}, 0, 0, NewQuery(Tags("g0"))},
		{[]ev{{"T%", []string{"g%"}}, {"T_", []string{"'"}}, {"T0", []string{"\\"}}}, 3, 2,
			NewQuery(TypesAndTags([]string{"T%"}, "g%"), Tags("'"), Types("T_"))},
		{nil, 20, 1, NewQuery(TypesAndTags([]string{"T0", "T1"}, "g0", "g1"), Tags("g2", "g3", "g4"))},
		{nil, 0, 0, NewQuery(QueryItem{}, Types("T1"))},
		{[]ev{{"T9", []string{"y'z", "g0"}}}, 0x85, 5, NewQuery(Types("T9"), Tags("y'z"))},
		{[]ev{{"T0", []string{"NULL", "{g0}", " ", `"g0"`}}}, 7, 0, NewQuery(Tags("NULL"), Tags("{g0}", " "), Tags(`"g0"`))},
		{[]ev{{"T0", []string{"'; DROP TABLE factos_events; --"}}}, 0, 0, NewQuery(Tags("'; DROP TABLE factos_events; --"))},
		{nil, 0, 0, NewQuery(Tags("a\x00b"))},     // refused: NUL
		{nil, 0, 0, NewQuery(Types(""))},          // refused: empty
		{nil, 0, 0, NewQuery(Tags("g0", "\xff"))}, // refused: not UTF-8
	} {
		var b []byte
		name := func(vocab []string, s string) {
			if i := slices.Index(vocab, s); i >= 0 {
				b = append(b, byte(i))
				return
			}
			b = append(append(b, 0xF0, byte(len(s))), s...)
		}
		b = append(b, byte(len(seed.events)))
		for _, e := range seed.events {
			name(fuzzTypes, e.typ)
			b = append(b, byte(len(e.tags)))
			for _, tag := range e.tags {
				name(fuzzTags, tag)
			}
		}
		b = append(b, seed.after, seed.limit)
		if seed.q.All {
			b = append(b, 0xFF)
		} else {
			b = append(b, 0, byte(len(seed.q.Items)-1))
			for _, it := range seed.q.Items {
				b = append(b, byte(len(it.Types)))
				for _, typ := range it.Types {
					name(fuzzTypes, typ)
				}
				b = append(b, byte(len(it.Tags)))
				for _, tag := range it.Tags {
					name(fuzzTags, tag)
				}
			}
		}
		f.Add(b)
	}
	d := &fuzzMatchDB{}
	db := testdb.Lazy(f, d.init)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		db(t)
		s, in := d.store, &fuzzInput{b: data}
		d.n++

		var events []EventData
		for range in.byte() % 4 {
			events = append(events, in.event())
		}
		if len(events) > 0 && len(d.stored) < fuzzStoredCap {
			res, err := s.Append(ctx, AppendRequest{Stream: fmt.Sprint("fuzz-", d.n), Events: events})
			if err != nil {
				t.Fatalf("appending %+v: %v", events, err)
			}
			d.stored = append(d.stored, res.Records...)
		}
		stored := d.stored
		last := stored[len(stored)-1].Position

		var after Position
		if c := in.byte(); c != 0 {
			after = max(0, stored[int(c)%len(stored)].Position-Position(c>>7))
		}
		limit := int(in.byte() % 8)
		q := in.query()
		t.Logf("new events %+v; after %d, limit %d, query %q", events, after, limit, q)

		probe := func() error {
			_, err := s.Append(ctx, AppendRequest{
				Stream:    "probe",
				Events:    []EventData{{Type: "Probe"}},
				Condition: FailIfEventsMatch(q, &after),
				Hooks: []Hook{HookFunc(func(context.Context, pgx.Tx, []RawRecord) error {
					return errProbe
				})},
			})
			return err
		}

		if verr := s.Limits().checkQuery("query", q); verr != nil {
			_, rerr := s.Read(ctx, q)
			_, aerr := s.ReadAfter(ctx, after, &ReadAfterOpts{Query: &q, Limit: limit})
			perr := probe()
			for _, err := range []error{rerr, aerr, perr} {
				var inv *InvalidInputError
				if !errors.As(err, &inv) {
					t.Fatalf("query %s refused by validation (%v) but a read or append answered %v", q, verr, err)
				}
			}
			return
		}

		expect := func(after Position, limit int) []Position {
			var out []Position
			for _, r := range stored {
				if r.Position > after && q.Matches(r.Type, r.Tags) && (limit <= 0 || len(out) < limit) {
					out = append(out, r.Position)
				}
			}
			return out
		}
		positions := func(rs []RawRecord) []Position {
			out := make([]Position, len(rs))
			for i, r := range rs {
				out[i] = r.Position
			}
			return out
		}

		effective := limit
		if effective == 0 {
			effective = DefaultReadLimit
		}
		page, err := s.ReadAfter(ctx, after, &ReadAfterOpts{Query: &q, Limit: limit})
		if err != nil {
			t.Fatalf("ReadAfter(%d, %s, limit %d): %v", after, q, limit, err)
		}
		want := expect(after, effective)
		if got := positions(page.Records); !slices.Equal(got, want) {
			t.Fatalf("ReadAfter(%d, %s, limit %d) = %v, want %v", after, q, limit, got, want)
		}
		if len(want) < effective && page.Next < max(after, last) {
			t.Fatalf("ReadAfter(%d, %s, limit %d): a partial page continues from %d, before the last stored position %d", after, q, limit, page.Next, last)
		}

		read, err := s.Read(ctx, q)
		if err != nil {
			t.Fatalf("Read(%s): %v", q, err)
		}
		want = expect(0, 0)
		if got := positions(read.Records); !slices.Equal(got, want) {
			t.Fatalf("Read(%s) = %v, want %v", q, got, want)
		}
		if len(want) > 0 && (read.After == nil || *read.After != want[len(want)-1]) {
			t.Fatalf("Read(%s).After = %v, want %d", q, read.After, want[len(want)-1])
		}

		err = probe()
		wantConflict := len(expect(after, 1)) > 0
		switch {
		case wantConflict && !errors.Is(err, ErrConflict):
			t.Fatalf("condition (%s, after %d): err %v, want a conflict", q, after, err)
		case !wantConflict && !errors.Is(err, errProbe):
			t.Fatalf("condition (%s, after %d): err %v, want it to pass", q, after, err)
		}
	})
}
