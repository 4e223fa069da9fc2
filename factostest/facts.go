package factostest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/factos-go/factos/eventstore"
)

// This file holds what every scenario starts from: the facts in the store.
// A fact is given (the decision or view needs it, so its query must select
// it) or unrelated (stored, but outside the boundary, so the query must not
// select it). Facts are encoded with the codec under test, then either
// turned into records in memory (pure) or appended to a real store.

// role is what a fact is to the code under test.
type role int

const (
	given role = iota
	unrelated
)

// Streams of the facts the kit stores. A handler's given facts go to the
// command's own stream instead, which is the whole context of a
// stream-revision handler.
const (
	// GivenStream holds the given facts of projections.
	GivenStream = "factostest-given"
	// UnrelatedStream holds unrelated facts.
	UnrelatedStream = "factostest-unrelated"
)

// Epoch is the RecordedAt of the first record the kit builds in memory;
// each later record is one second later. IDs are
// 00000000-0000-7000-8000-<position in hex> unless the EventData has one.
// Treat it as a constant.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type fact[E any] struct {
	role  role
	event E
	data  *eventstore.EventData // GivenData: stored as it is, not encoded
}

// facts is an immutable list: each addition returns a new one, so a
// scenario can be extended in several directions.
type facts[E any] []fact[E]

func (fs facts[E]) withEvents(r role, events []E) facts[E] {
	out := append(facts[E](nil), fs...)
	for _, e := range events {
		out = append(out, fact[E]{role: r, event: e})
	}
	return out
}

func (fs facts[E]) withData(data []eventstore.EventData) facts[E] {
	out := append(facts[E](nil), fs...)
	for _, d := range data {
		out = append(out, fact[E]{role: given, data: &d})
	}
	return out
}

// stored is a fact as the store holds it.
type stored struct {
	role  role
	label string // given[i] or unrelated[i], for messages
	data  eventstore.EventData
}

// encode encodes the facts with codec.
func (fs facts[E]) encode(codec eventstore.Codec[E]) ([]stored, error) {
	out := make([]stored, len(fs))
	count := map[role]int{}
	for i, f := range fs {
		name := "given"
		if f.role == unrelated {
			name = "unrelated"
		}
		label := fmt.Sprintf("%s[%d]", name, count[f.role])
		count[f.role]++
		var d eventstore.EventData
		if f.data != nil {
			d = *f.data
		} else {
			var err error
			if d, err = codec.Encode(f.event); err != nil {
				return nil, fmt.Errorf("error encoding %s, %s: %w", label, describe(f.event), err)
			}
		}
		if d.Tags == nil {
			d.Tags = []string{} // as the store returns them
		}
		out[i] = stored{role: f.role, label: label, data: d}
	}
	return out, nil
}

// recordID is the id of the record at position p built in memory.
func recordID(p int) uuid.UUID {
	var id uuid.UUID
	id[6], id[8] = 0x70, 0x80 // version 7, RFC 4122 variant
	for i := 15; i >= 10 && p > 0; i-- {
		id[i] = byte(p)
		p >>= 8
	}
	return id
}

// records builds the records a store would hold after appending the facts
// in order, without a store: positions from 1, revisions per stream.
func records(st []stored, stream func(role) string) []eventstore.RawRecord {
	out := make([]eventstore.RawRecord, len(st))
	revisions := map[string]int64{}
	for i, s := range st {
		pos := i + 1
		name := stream(s.role)
		revisions[name]++
		id := s.data.ID
		if id == uuid.Nil {
			id = recordID(pos)
		}
		out[i] = eventstore.RawRecord{
			ID: id, Stream: name, Revision: revisions[name], Position: eventstore.Position(pos),
			Type: s.data.Type, Version: s.data.Version, Tags: s.data.Tags, Metadata: s.data.Metadata,
			RecordedAt: Epoch.Add(time.Duration(i) * time.Second), Data: s.data.Data,
		}
	}
	return out
}

// appendFacts appends the facts to store in order, each to its role's
// stream, and returns their records.
func appendFacts(ctx context.Context, store *eventstore.Store, st []stored, stream func(role) string) ([]eventstore.RawRecord, error) {
	out := make([]eventstore.RawRecord, len(st))
	for i, s := range st {
		res, err := store.Append(ctx, eventstore.AppendRequest{Stream: stream(s.role), Events: []eventstore.EventData{s.data}})
		if err != nil {
			return nil, fmt.Errorf("error appending %s, %s: %w", s.label, eventItem(s.data).oneLine(), err)
		}
		out[i] = res.Records[0]
	}
	return out, nil
}

// checkEmpty fails when the store already holds records the query selects:
// they would join the scenario's facts and make its outcome meaningless.
func checkEmpty(ctx context.Context, store *eventstore.Store, q eventstore.Query) error {
	res, err := store.Read(ctx, q)
	if err != nil {
		return fmt.Errorf("error reading the store before the scenario: %w", err)
	}
	if n := len(res.Records); n > 0 {
		return fmt.Errorf("the store already holds %d events the query %s selects, from before this scenario (the first: %s at position %d):"+
			" give each scenario a store over an empty database, or ids no other scenario uses",
			n, q, res.Records[0].Type, res.Records[0].Position)
	}
	return nil
}

// selection compares what a query selected with what it should have: every
// given fact and no unrelated one. subject names what reads the query ("the
// decision", "the view") and cost what a needless selection costs it. It
// returns "" when they agree, and otherwise a report a developer can act on.
func selection(st []stored, selected []bool, query eventstore.Query, subject, cost string) string {
	var missed, needless []string
	for i, s := range st {
		switch {
		case s.role == given && !selected[i]:
			missed = append(missed, "    "+s.label+" "+eventItem(s.data).oneLine())
		case s.role == unrelated && selected[i]:
			needless = append(needless, "    "+s.label+" "+eventItem(s.data).oneLine())
		}
	}
	if len(missed) == 0 && len(needless) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the query does not select exactly the given facts.\n  query: %s", query)
	if len(missed) > 0 {
		fmt.Fprintf(&b, "\n  missed: %d given fact(s) the query does not select, so in production %s never sees them"+
			" (widen the query, or drop them from Given if %s does not need them):\n%s",
			len(missed), subject, subject, strings.Join(missed, "\n"))
	}
	if len(needless) > 0 {
		fmt.Fprintf(&b, "\n  selected needlessly: %d fact(s) declared Unrelated that the query selects, so %s %s"+
			" (narrow the query, or move them to Given if %s needs them):\n%s",
			len(needless), subject, cost, subject, strings.Join(needless, "\n"))
	}
	return b.String()
}

// positions returns the set of positions of records.
func positions(recs []eventstore.RawRecord) map[eventstore.Position]bool {
	out := make(map[eventstore.Position]bool, len(recs))
	for _, r := range recs {
		out[r.Position] = true
	}
	return out
}
