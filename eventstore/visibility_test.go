package eventstore_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// fact is a test event that carries its own type and tags, so one codec can
// produce any shape a case needs.
type fact struct {
	Type string
	Tags []string
	Seen int // how many matching events the decision saw; -1 for blind writes
}

type factCodec struct{}

func (factCodec) Encode(f fact) (eventstore.EventData, error) {
	data, err := json.Marshal(f.Seen)
	return eventstore.EventData{Type: f.Type, Tags: f.Tags, Data: data}, err
}

func (factCodec) Decode(rec eventstore.RawRecord) (fact, error) {
	f := fact{Type: rec.Type, Tags: rec.Tags}
	return f, json.Unmarshal(rec.Data, &f.Seen)
}

// Writers that read nothing and check nothing must still be seen by every
// reader whose query matches what they write: each decision counts the
// events matching its query, and afterwards every count must equal the
// number of matching events before it in the log. This is what the write
// keys are for, so every query shape is covered, each with blind writers
// of matching and of non-matching events, some appending fixed events and
// some deciding theirs from an unrelated context.
func TestConcurrentReadersSeeBlindWritersOfTheirContext(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		query eventstore.Query
		mine  fact   // what the deciding command appends
		blind []fact // what blind writers append, in turn
	}{
		{
			name:  "tags only",
			query: eventstore.NewQuery(eventstore.Tags("doc:1")),
			mine:  fact{Type: "Counted", Tags: []string{"doc:1"}},
			blind: []fact{{Type: "Edited", Tags: []string{"user:x", "doc:1"}}, {Type: "Edited", Tags: []string{"doc:2"}}},
		},
		{
			name:  "types only",
			query: eventstore.NewQuery(eventstore.Types("Edited", "Counted")),
			mine:  fact{Type: "Counted", Tags: []string{"counter"}},
			blind: []fact{{Type: "Edited", Tags: []string{"doc:9"}}, {Type: "Viewed", Tags: []string{"doc:9"}}},
		},
		{
			name:  "types and tags",
			query: eventstore.NewQuery(eventstore.TypesAndTags([]string{"Edited", "Counted"}, "doc:1")),
			mine:  fact{Type: "Counted", Tags: []string{"doc:1"}},
			blind: []fact{{Type: "Edited", Tags: []string{"doc:1", "user:y"}}, {Type: "Viewed", Tags: []string{"doc:1"}}, {Type: "Edited", Tags: []string{"doc:2"}}},
		},
		{
			name:  "several tags",
			query: eventstore.NewQuery(eventstore.TypesAndTags([]string{"Edited", "Counted"}, "lang:en", "doc:1")),
			mine:  fact{Type: "Counted", Tags: []string{"doc:1", "lang:en"}},
			blind: []fact{{Type: "Edited", Tags: []string{"lang:en", "doc:1"}}, {Type: "Edited", Tags: []string{"doc:1"}}, {Type: "Edited", Tags: []string{"lang:en"}}},
		},
		{
			name: "several items",
			query: eventstore.NewQuery(eventstore.Types("Archived"),
				eventstore.Tags("doc:1", "lang:en"), eventstore.TypesAndTags([]string{"Counted"}, "doc:1")),
			mine:  fact{Type: "Counted", Tags: []string{"doc:1"}},
			blind: []fact{{Type: "Archived", Tags: []string{"doc:7"}}, {Type: "Edited", Tags: []string{"lang:en", "doc:1"}}, {Type: "Edited", Tags: []string{"doc:1"}}},
		},
		{
			name:  "all events",
			query: eventstore.AllEvents(),
			mine:  fact{Type: "Counted"},
			blind: []fact{{Type: "Edited", Tags: []string{"doc:3"}}, {Type: "Viewed"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachStrategy(t, func(t *testing.T, b *bundle) {
				h := eventstore.Handler[int, fact, int]{
					Codec:  factCodec{},
					Stream: func(i int) string { return fmt.Sprintf("reader-%d", i) },
					Query:  func(int) eventstore.Query { return tc.query },
					Decider: eventstore.Decider[int, fact, int]{
						Evolve: func(n int, _ fact) int { return n + 1 },
						Decide: func(n int, _ int) ([]fact, error) {
							f := tc.mine
							f.Seen = n
							return []fact{f}, nil
						},
					},
				}
				const n = 120
				errs := race(n, 24, func(i int) error {
					if i%2 == 0 {
						_, err := eventstore.Dispatch(b.ctx, b.store, h, i, nil)
						return err
					}
					f := tc.blind[(i/2)%len(tc.blind)]
					f.Seen = -1
					if i%4 == 3 {
						// A writer that decides on a context of its own: its
						// write keys are only known after the decision.
						_, err := eventstore.Dispatch(b.ctx, b.store, eventstore.Handler[int, fact, int]{
							Codec:   factCodec{},
							Stream:  func(i int) string { return fmt.Sprintf("decider-%d", i) },
							Query:   func(i int) eventstore.Query { return eventstore.NewQuery(eventstore.Tags(fmt.Sprintf("own:%d", i))) },
							Decider: eventstore.Decider[int, fact, int]{Evolve: func(n int, _ fact) int { return n }, Decide: func(int, int) ([]fact, error) { return []fact{f}, nil }},
						}, i, nil)
						return err
					}
					ev, err := factCodec{}.Encode(f)
					if err != nil {
						return err
					}
					_, err = b.store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprintf("blind-%d", i), Events: []eventstore.EventData{ev}})
					return err
				})
				for i, err := range errs {
					if err != nil {
						t.Fatalf("command %d: %v", i, err)
					}
				}
				page, err := b.store.ReadAfter(b.ctx, 0, &eventstore.ReadAfterOpts{Limit: 10 * n})
				if err != nil {
					t.Fatal(err)
				}
				matching, decisions := 0, 0
				for _, rec := range page.Records {
					f, err := factCodec{}.Decode(rec)
					if err != nil {
						t.Fatal(err)
					}
					if f.Seen >= 0 {
						decisions++
						if f.Seen != matching {
							t.Errorf("decision at %d saw %d matching events, %d precede it", rec.Position, f.Seen, matching)
						}
					}
					if tc.query.Matches(rec.Type, rec.Tags) {
						matching++
					}
				}
				if decisions != n/2 || len(page.Records) != n {
					t.Errorf("%d decisions of %d records, want %d of %d", decisions, len(page.Records), n/2, n)
				}
			})
		})
	}
}
