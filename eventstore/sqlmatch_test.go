package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/internal/testdb"
)

var errProbe = errors.New("probe: roll back")

// The SQL the store generates and Query.Matches must agree: random events,
// random queries, random positions and limits, every read path.
func TestSQLMatchesAgreeWithGo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := New(testdb.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 1))
	var stored []RawRecord
	for i := range 40 {
		var events []EventData
		for range 1 + rng.IntN(10) {
			events = append(events, randomEvent(rng))
		}
		res, err := s.Append(ctx, AppendRequest{Stream: fmt.Sprint("s", i), Events: events})
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, res.Records...)
	}
	last := stored[len(stored)-1].Position

	positions := func(rs []RawRecord) []Position {
		out := make([]Position, len(rs))
		for i, r := range rs {
			out[i] = r.Position
		}
		return out
	}
	expect := func(q Query, after Position, limit int) []Position {
		var out []Position
		for _, r := range stored {
			if r.Position > after && q.Matches(r.Type, r.Tags) && (limit <= 0 || len(out) < limit) {
				out = append(out, r.Position)
			}
		}
		return out
	}

	for i := range 400 {
		q := randomQuery(rng)
		after := Position(rng.Int64N(int64(last) + 1))
		limit := rng.IntN(8) // 0: no limit in expect, default limit in ReadAfter
		want := expect(q, after, limit)

		page, err := s.ReadAfter(ctx, after, &ReadAfterOpts{Query: &q, Limit: limit})
		if err != nil {
			t.Fatalf("query %d %s: %v", i, q, err)
		}
		if got := positions(page.Records); !slices.Equal(got, want) {
			t.Fatalf("ReadAfter(%d, %s, limit %d) = %v, want %v", after, q, limit, got, want)
		}

		read, err := s.Read(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := positions(read.Records), expect(q, 0, 0); !slices.Equal(got, want) {
			t.Fatalf("Read(%s) = %v, want %v", q, got, want)
		}

		// The append condition runs its own EXISTS statement. A probe
		// append that passes the condition is rolled back by its hook.
		_, err = s.Append(ctx, AppendRequest{
			Stream:    "probe",
			Events:    []EventData{{Type: "Probe"}},
			Condition: FailIfEventsMatch(q, &after),
			Hooks: []Hook{HookFunc(func(context.Context, pgx.Tx, []RawRecord) error {
				return errProbe
			})},
		})
		wantConflict := len(expect(q, after, 1)) > 0
		switch {
		case wantConflict && !errors.Is(err, ErrConflict):
			t.Fatalf("condition (%s, after %d): err %v, want a conflict", q, after, err)
		case !wantConflict && !errors.Is(err, errProbe):
			t.Fatalf("condition (%s, after %d): err %v, want it to pass", q, after, err)
		}
	}
}
