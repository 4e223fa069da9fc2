package eventstore

import (
	"hash/fnv"
	"slices"
)

// Lock keys of the "keys" strategy. See docs/consistency.md for why they
// keep the append condition's guarantee.
//
// Every key is a 64-bit FNV-1a hash of a kind and its parts, separated by
// U+001F (which validation keeps out of names, so different inputs never
// render to the same string). A hash collision makes two unrelated contexts
// share a key: they then serialize, which costs time but never safety.
//
// Writers take SHARED keys for what they write; readers take EXCLUSIVE keys
// for what their decision depends on. Writers of the same context do not
// block each other through their write keys; a reader blocks, and is blocked
// by, every writer of an event its query could match.
const (
	kindAll     = "all"     // every event: shared by every writer
	kindType    = "type"    // events of one type: shared by its writers
	kindTag     = "tag"     // events with one tag: shared by their writers
	kindTypeTag = "typetag" // events of one type with one tag
	kindStream  = "stream"  // one stream: exclusive for its writer
)

func lockKey(kind string, parts ...string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("factos\x1f" + kind))
	for _, p := range parts {
		_, _ = h.Write([]byte{0x1f})
		_, _ = h.Write([]byte(p))
	}
	return int64(h.Sum64())
}

var allKey = lockKey(kindAll)

// lockSet maps a key to whether it must be held exclusively. Exclusive wins
// when a dispatch both reads and writes a context, so a transaction never
// asks for one key in two modes (which could deadlock two such
// transactions that each hold it shared and wait to upgrade).
type lockSet map[int64]bool

func (s lockSet) add(key int64, exclusive bool) { s[key] = s[key] || exclusive }

func (s lockSet) addAll(o lockSet) {
	for k, x := range o {
		s.add(k, x)
	}
}

// ordered returns the keys in acquisition order: ascending, with the
// all-events key last. Acquiring every transaction's keys in one global
// order means no two transactions can wait for each other in a cycle.
// The all-events key goes last because every writer holds it shared: a
// writer queued behind a hot context's key then does not hold it yet, and a
// catch-up reader that takes it exclusively waits only for writers that are
// actually writing, not for the whole queue of a hot context.
func (s lockSet) ordered() (keys []int64, exclusive []bool) {
	keys = make([]int64, 0, len(s))
	for k := range s {
		if k != allKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, ok := s[allKey]; ok {
		keys = append(keys, allKey)
	}
	exclusive = make([]bool, len(keys))
	for i, k := range keys {
		exclusive[i] = s[k]
	}
	return keys, exclusive
}

// readKeys are the exclusive keys a decision on query q holds: for each
// item, one key that every writer of a matching event holds shared.
//
//   - all events (or an item with neither types nor tags): the all key;
//   - types only: the type key of each type;
//   - tags only: the tag key of one of the tags (an event matching the item
//     carries all of them, so any one will do; we take the smallest);
//   - types and tags: the type+tag key of each type with that one tag.
func readKeys(q Query) lockSet {
	q = q.normalized()
	s := lockSet{}
	if q.All {
		s.add(allKey, true)
		return s
	}
	for _, it := range q.Items {
		switch {
		case len(it.Tags) == 0:
			for _, t := range it.Types {
				s.add(lockKey(kindType, t), true)
			}
		case len(it.Types) == 0:
			s.add(lockKey(kindTag, it.Tags[0]), true)
		default:
			for _, t := range it.Types {
				s.add(lockKey(kindTypeTag, t, it.Tags[0]), true)
			}
		}
	}
	return s
}

// writeKeys are the keys a writer of events holds shared: everything a
// reader of a matching query could hold exclusively.
func writeKeys(events []EventData) lockSet {
	s := lockSet{allKey: false}
	for _, ev := range events {
		s.add(lockKey(kindType, ev.Type), false)
		for _, tag := range ev.Tags {
			s.add(lockKey(kindTag, tag), false)
			s.add(lockKey(kindTypeTag, ev.Type, tag), false)
		}
	}
	return s
}

func streamKey(stream string) int64 { return lockKey(kindStream, stream) }

// missing returns the keys of want not already held, in ascending order.
func (s lockSet) missing(want lockSet) []int64 {
	var out []int64
	for k := range want {
		if _, ok := s[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
