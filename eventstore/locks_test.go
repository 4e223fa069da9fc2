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

// conflicts tells whether two transactions holding a and b would wait for
// each other: they share a key that one of them holds exclusively.
func conflicts(a, b lockSet) bool {
	for k, x := range a {
		if y, ok := b[k]; ok && (x || y) {
			return true
		}
	}
	return false
}

// writerHolds is what a writer holds by the time it draws positions: its
// planned keys and, taken just before it inserts, the all key shared.
func writerHolds(plan lockSet) lockSet { return union(plan, lockSet{allKey: false}) }

// The safety of the keys strategy in one property: whenever an event
// matches a query, every plan a reader of the query may hold conflicts with
// every plan a writer of the event may hold — fine or striped writes, fine
// or all-key reads, whatever the budget made of them. The two transactions
// then cannot overlap.
func TestLockKeysCoverEveryMatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	budgets := []int{MinLockKeys, DefaultMaxLockKeys, 1 << 20}
	matches := 0
	shapes := map[string]int{}
	for range 200_000 {
		q, ev := randomQuery(rng), randomEvent(rng)
		if !q.Matches(ev.Type, ev.Tags) {
			continue
		}
		matches++
		// Other items and events around them push the plans past small
		// budgets, to their coarser forms.
		for range rng.IntN(4) * rng.IntN(20) {
			q = q.Or(QueryItem{Types: []string{fmt.Sprintf("X%d", rng.IntN(1000))}})
		}
		writes := []EventData{ev}
		for range rng.IntN(4) * rng.IntN(30) {
			writes = append(writes, EventData{Type: fmt.Sprintf("W%d", rng.IntN(50)), Tags: []string{fmt.Sprintf("w%d", rng.IntN(1000)), fmt.Sprintf("v%d", rng.IntN(1000))}})
		}
		rng.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
		rb, wb := budgets[rng.IntN(len(budgets))], budgets[rng.IntN(len(budgets))]
		read := planKeys(rb, "reader", []Query{q.normalized()}, nil)
		write := writerHolds(planKeys(wb, "writer", nil, writes))
		if _, ok := read[allKey]; ok {
			shapes["all-key read"]++
		}
		if _, ok := write[lockKey(kindType, ev.Type)]; !ok {
			shapes["striped write"]++
		}
		if !conflicts(read, write) {
			t.Fatalf("query %s matches event %s %v but their keys do not conflict (read budget %d, write budget %d, %d events written)", q, ev.Type, ev.Tags, rb, wb, len(writes))
		}
	}
	if matches < 10_000 || shapes["all-key read"] < 1000 || shapes["striped write"] < 1000 {
		t.Fatalf("only %d matches drawn (shapes %v): the generator is too sparse to prove anything", matches, shapes)
	}
}

// A dispatch holds at most its budget of keys, whatever it reads and
// writes: the documented limits (100 events of 32 tags, 64 query items of
// 64 types) included.
func TestLockKeysStayWithinBudget(t *testing.T) {
	t.Parallel()
	var big []EventData
	for e := range DefaultMaxEventsPerDispatch {
		ev := EventData{Type: fmt.Sprintf("T%d", e)}
		for g := range DefaultMaxTagsPerEvent {
			ev.Tags = append(ev.Tags, fmt.Sprintf("tag-%d-%d", e, g))
		}
		big = append(big, ev)
	}
	var wide Query
	for i := range DefaultMaxQueryItems {
		it := QueryItem{Tags: []string{fmt.Sprint("q", i)}}
		for j := range DefaultMaxTypesPerQueryItem {
			it.Types = append(it.Types, fmt.Sprintf("T%d-%d", i, j))
		}
		wide.Items = append(wide.Items, it)
	}
	small := []EventData{{Type: "T", Tags: []string{"a", "b"}}}
	narrow := NewQuery(Tags("a"))
	for _, budget := range []int{MinLockKeys, DefaultMaxLockKeys, 200} {
		for _, tc := range []struct {
			name   string
			reads  []Query
			writes []EventData
		}{
			{"small", []Query{narrow}, small},
			{"big write", []Query{narrow}, big},
			{"wide read", []Query{wide.normalized()}, small},
			{"both", []Query{wide.normalized(), narrow}, big},
		} {
			plan := planKeys(budget, "stream", tc.reads, tc.writes)
			n := len(plan)
			if _, ok := plan[allKey]; !ok && len(tc.writes) > 0 {
				n++
			}
			if n > budget {
				t.Errorf("budget %d, %s: %d keys", budget, tc.name, n)
			}
		}
	}
	// Within the default budget a small dispatch keeps its fine keys.
	plan := planKeys(DefaultMaxLockKeys, "stream", []Query{narrow}, small)
	if _, ok := plan[lockKey(kindTypeTag, "T", "a")]; !ok {
		t.Errorf("a small dispatch lost its fine keys: %v", plan)
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
