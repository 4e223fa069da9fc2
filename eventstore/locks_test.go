package eventstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// randomEvent and randomQuery draw from small vocabularies so that matches
// are frequent.
func randomEvent(rng *rand.Rand) EventData {
	ev := EventData{Type: fmt.Sprintf("T%d", rng.IntN(4))}
	for i := range 6 {
		if rng.IntN(3) == 0 {
			ev.Tags = append(ev.Tags, fmt.Sprintf("g%d", i))
		}
	}
	rng.Shuffle(len(ev.Tags), func(i, j int) { ev.Tags[i], ev.Tags[j] = ev.Tags[j], ev.Tags[i] })
	return ev
}

func randomQuery(rng *rand.Rand) Query {
	if rng.IntN(20) == 0 {
		return AllEvents()
	}
	var q Query
	for range 1 + rng.IntN(3) {
		var it QueryItem
		for range rng.IntN(3) {
			it.Types = append(it.Types, fmt.Sprintf("T%d", rng.IntN(4)))
		}
		for range rng.IntN(4) {
			it.Tags = append(it.Tags, fmt.Sprintf("g%d", rng.IntN(6)))
		}
		if len(it.Types)+len(it.Tags) == 0 && rng.IntN(4) != 0 {
			it.Types = []string{"T0"}
		}
		q.Items = append(q.Items, it)
	}
	return q
}

// The safety of the keys strategy in one property: whenever an event
// matches a query, some key the query's reader holds exclusively is a key
// the event's writer holds. The two transactions then cannot overlap.
func TestLockKeysCoverEveryMatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	matches := 0
	for range 200_000 {
		q, ev := randomQuery(rng), randomEvent(rng)
		if !q.Matches(ev.Type, ev.Tags) {
			continue
		}
		matches++
		read, write := readKeys(q), writeKeys([]EventData{ev})
		conflict := false
		for k, exclusive := range read {
			if _, ok := write[k]; ok && exclusive {
				conflict = true
				break
			}
		}
		if !conflict {
			t.Fatalf("query %s matches event %s %v but their keys do not conflict", q, ev.Type, ev.Tags)
		}
	}
	if matches < 10_000 {
		t.Fatalf("only %d matches drawn: the generator is too sparse to prove anything", matches)
	}
}

// Normalization must not change what a query matches.
func TestNormalizedQueryMatchesTheSame(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	for range 50_000 {
		q, ev := randomQuery(rng), randomEvent(rng)
		if q.Matches(ev.Type, ev.Tags) != q.normalized().Matches(ev.Type, ev.Tags) {
			t.Fatalf("query %s and its normal form %s disagree on %s %v", q, q.normalized(), ev.Type, ev.Tags)
		}
	}
}

func TestLockOrderPutsAllKeyLast(t *testing.T) {
	t.Parallel()
	s := lockSet{allKey: true}
	for i := range 50 {
		s.add(lockKey(kindTag, fmt.Sprint(i)), i%2 == 0)
	}
	keys, excl := s.ordered()
	if keys[len(keys)-1] != allKey || !excl[len(excl)-1] {
		t.Fatalf("all key not last")
	}
	for i := 1; i < len(keys)-1; i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("keys not ascending at %d", i)
		}
	}
	for i, k := range keys {
		if excl[i] != s[k] {
			t.Fatalf("mode of key %d lost", k)
		}
	}
}

func TestQueryMatches(t *testing.T) {
	t.Parallel()
	tags := []string{"a", "b"}
	for _, tc := range []struct {
		name string
		q    Query
		want bool
	}{
		{"all", AllEvents(), true},
		{"empty matches nothing", Query{}, false},
		{"type", NewQuery(Types("X")), true},
		{"other type", NewQuery(Types("Y")), false},
		{"types are OR-ed", NewQuery(Types("Y", "X")), true},
		{"tag", NewQuery(Tags("a")), true},
		{"tags are AND-ed", NewQuery(Tags("a", "b")), true},
		{"missing tag", NewQuery(Tags("a", "c")), false},
		{"type and tag", NewQuery(TypesAndTags([]string{"X"}, "b")), true},
		{"type but not tag", NewQuery(TypesAndTags([]string{"X"}, "c")), false},
		{"tag but not type", NewQuery(TypesAndTags([]string{"Y"}, "a")), false},
		{"items are OR-ed", NewQuery(Types("Y"), Tags("b")), true},
		{"no item matches", NewQuery(Types("Y"), Tags("c")), false},
		{"empty item matches all", NewQuery(Types("Y"), QueryItem{}), true},
	} {
		if got := tc.q.Matches("X", tags); got != tc.want {
			t.Errorf("%s: %s matches X%v = %v, want %v", tc.name, tc.q, tags, got, tc.want)
		}
	}
}
