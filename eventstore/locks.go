package eventstore

import (
	"hash/fnv"
	"slices"
	"strconv"
)

// Lock keys of the "keys" strategy. See docs/consistency.md for why they
// keep the append condition's guarantee.
//
// Every key is a 64-bit FNV-1a hash of a kind and its parts, separated by
// U+001F (which validation keeps out of names, so different inputs never
// render to the same string). A hash collision makes two unrelated contexts
// share a key: they then serialize, which costs time but never safety.
//
// Readers take EXCLUSIVE keys for what their decision depends on; writers
// take SHARED keys for what they write, so writers of one context do not
// block each other, while a reader blocks, and is blocked by, every writer
// of an event its query could match.
//
// A dispatch holds a bounded number of keys (Config.MaxLockKeys): every
// advisory lock takes a slot in PostgreSQL's shared lock table, which is
// sized for max_locks_per_transaction (64 by default) per connection, and a
// full table fails other transactions on the whole server. A write whose
// fine keys would not fit takes stripe keys instead: 16 type stripes and 16
// tag stripes, exclusively. Every reader of a type or a tag also holds that
// type's or tag's stripe shared, so a striped writer still conflicts with
// every reader of what it writes; it just also waits for readers of the
// other names in its stripes. A read that does not fit takes the all key.
const (
	kindAll        = "all"        // every event: shared by every writer, from before it draws a position
	kindType       = "type"       // events of one type: shared by its writers
	kindTag        = "tag"        // events with one tag: shared by their writers
	kindTypeTag    = "typetag"    // events of one type with one tag
	kindStream     = "stream"     // one stream: exclusive for its writer
	kindTypeStripe = "typestripe" // a stripe of types: shared by their readers
	kindTagStripe  = "tagstripe"  // a stripe of tags: shared by their readers

	typeStripes = 16
	tagStripes  = 16
)

// MinLockKeys is the smallest Config.MaxLockKeys: enough for the coarsest
// plan, the all key, a stream key and every stripe.
const MinLockKeys = 2 + typeStripes + tagStripes

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

func streamKey(stream string) int64 { return lockKey(kindStream, stream) }

func typeStripeKey(typ string) int64 {
	return lockKey(kindTypeStripe, strconv.FormatUint(uint64(lockKey(kindType, typ))%typeStripes, 10))
}

func tagStripeKey(tag string) int64 {
	return lockKey(kindTagStripe, strconv.FormatUint(uint64(lockKey(kindTag, tag))%tagStripes, 10))
}

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

// union returns a new set holding the keys of every set.
func union(sets ...lockSet) lockSet {
	out := lockSet{}
	for _, s := range sets {
		out.addAll(s)
	}
	return out
}

// ordered returns the keys in acquisition order: ascending, with the
// all-events key last. Acquiring every transaction's keys in one global
// order means no two transactions can wait for each other in a cycle.
// The all-events key goes last because writers take it shared only when
// they insert, after every other key: a transaction that holds it
// exclusively then never waits for another key, and a writer waiting for
// it holds only keys that come before it.
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

// missing returns the part of want that s does not already hold in a mode
// at least as strong.
func (s lockSet) missing(want lockSet) lockSet {
	out := lockSet{}
	for k, x := range want {
		if held, ok := s[k]; !ok || (x && !held) {
			out.add(k, x)
		}
	}
	return out
}

// readKeys are the keys a decision on query q (normalized) holds: for each
// item, exclusive keys that every fine writer of a matching event holds
// shared, and shared stripe keys that every striped writer of a matching
// event holds exclusively.
//
//   - all events: the all key;
//   - types only: the type key and the type stripe of each type;
//   - tags only: the tag key and the tag stripe of one of the tags (an event
//     matching the item carries all of them, so any one will do; we take
//     the smallest);
//   - types and tags: the type+tag key of each type with that one tag, and
//     the tag's stripe.
func readKeys(q Query) lockSet {
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
				s.add(typeStripeKey(t), false)
			}
		case len(it.Types) == 0:
			s.add(lockKey(kindTag, it.Tags[0]), true)
			s.add(tagStripeKey(it.Tags[0]), false)
		default:
			for _, t := range it.Types {
				s.add(lockKey(kindTypeTag, t, it.Tags[0]), true)
			}
			s.add(tagStripeKey(it.Tags[0]), false)
		}
	}
	return s
}

// writeKeys are the keys a fine writer of events holds shared: everything a
// reader of a matching query could hold exclusively, but the all key, which
// writers take when they insert.
func writeKeys(events []EventData) lockSet {
	s := lockSet{}
	for _, ev := range events {
		s.add(lockKey(kindType, ev.Type), false)
		for _, tag := range ev.Tags {
			s.add(lockKey(kindTag, tag), false)
			s.add(lockKey(kindTypeTag, ev.Type, tag), false)
		}
	}
	return s
}

// stripedWriteKeys are the keys of a striped writer: the stripes of its
// types and tags, exclusively. At most typeStripes + tagStripes keys,
// whatever the size of the write.
func stripedWriteKeys(events []EventData) lockSet {
	s := lockSet{}
	for _, ev := range events {
		s.add(typeStripeKey(ev.Type), true)
		for _, tag := range ev.Tags {
			s.add(tagStripeKey(tag), true)
		}
	}
	return s
}

// planKeys chooses the keys a dispatch holds: an exclusive stream key when
// it writes to a stream, the read keys of its queries (normalized) and the
// write keys of its events, within budget keys (counting the all key that
// writers take when they insert). From the finest plan to the coarsest, the
// first that fits:
//
//  1. fine read keys, fine write keys;
//  2. fine read keys, striped write keys;
//  3. the all key for reading, fine write keys;
//  4. the all key for reading, striped write keys (at most MinLockKeys).
//
// Every plan holds, for each read query, a key that conflicts with every
// writer of a matching event, fine or striped, and for each written event a
// key that conflicts with every reader of a query it matches.
func planKeys(budget int, stream string, reads []Query, writes []EventData) lockSet {
	base := lockSet{}
	if stream != "" {
		base.add(streamKey(stream), true)
	}
	fineReads := lockSet{}
	for _, q := range reads {
		fineReads.addAll(readKeys(q))
	}
	var allReads lockSet
	if len(reads) > 0 {
		allReads = lockSet{allKey: true}
	}
	fineWrites, stripedWrites := writeKeys(writes), stripedWriteKeys(writes)
	var plan lockSet
	for _, candidate := range [][2]lockSet{{fineReads, fineWrites}, {fineReads, stripedWrites}, {allReads, fineWrites}, {allReads, stripedWrites}} {
		plan = union(base, candidate[0], candidate[1])
		n := len(plan)
		if _, ok := plan[allKey]; len(writes) > 0 && !ok {
			n++ // taken shared when the events are inserted
		}
		if n <= budget {
			break
		}
	}
	return plan
}
