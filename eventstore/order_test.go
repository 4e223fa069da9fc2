package eventstore_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// fillLog appends n filler events in appends of 100, each tagged with one of
// `spread` tags "a:<k>" (and a tag of its own), so that a test's contexts sit
// in a log of realistic size: indexes span many pages, and coarse predicate
// locks no longer hide ordering bugs the way they do on a log of a hundred
// events.
func fillLog(t *testing.T, b *bundle, n, spread int) {
	t.Helper()
	for start := 0; start < n; start += 100 {
		events := make([]eventstore.EventData, 0, 100)
		for i := start; i < min(start+100, n); i++ {
			events = append(events, eventstore.EventData{Type: "Filler", Tags: []string{fmt.Sprintf("a:%d", i%spread), fmt.Sprintf("f:%d", i)}, Data: []byte(`-1`)})
		}
		if _, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprintf("filler-%d", start), Events: events}); err != nil {
			t.Fatal(err)
		}
	}
}

// The guarantee in position order, on a log of 10,000 events: a decision R
// reads tag a:X and appends elsewhere, while a writer W appends an event
// tagged a:X — blindly, from a decision on a context of its own, or by
// stream revision. Whatever order they commit in, the positions must tell
// the truth: every event tagged a:X at a lower position than R's append
// must have been seen by R. (Under SERIALIZABLE isolation PostgreSQL may
// serialize R before W while W's event takes the lower position; a replay
// in position order then shows R ignoring a fact that precedes it.)
func TestConcurrentDecisionsSeeEveryEarlierMatchOnALargeLog(t *testing.T) {
	t.Parallel()
	forEachStrategy(t, func(t *testing.T, b *bundle) {
		const spread, pairs, workers = 200, 150, 8
		fillLog(t, b, 10_000, spread)

		reader := eventstore.Handler[int, fact, int]{
			Codec:  factCodec{},
			Stream: func(k int) string { return fmt.Sprintf("reader-%d", k) },
			Query: func(k int) eventstore.Query {
				return eventstore.NewQuery(eventstore.Tags(fmt.Sprintf("a:%d", k%spread)))
			},
			Decider: eventstore.Decider[int, fact, int]{
				Evolve: func(n int, _ fact) int { return n + 1 },
				Decide: func(n int, k int) ([]fact, error) {
					return []fact{{Type: "Decided", Tags: []string{fmt.Sprintf("r:%d", k)}, Seen: n}}, nil
				},
			},
		}
		written := func(k int) fact {
			return fact{Type: "Written", Tags: []string{fmt.Sprintf("a:%d", k%spread)}, Seen: -1}
		}
		ownContext := eventstore.Handler[int, fact, int]{
			Codec:   factCodec{},
			Stream:  func(k int) string { return fmt.Sprintf("writer-%d", k) },
			Query:   func(k int) eventstore.Query { return eventstore.NewQuery(eventstore.Tags(fmt.Sprintf("own:%d", k))) },
			Decider: eventstore.Decider[int, fact, int]{Evolve: func(n int, _ fact) int { return n }, Decide: func(_ int, k int) ([]fact, error) { return []fact{written(k)}, nil }},
		}
		byRevision := ownContext
		byRevision.Query = nil

		write := func(k int) error {
			switch k % 3 {
			case 0:
				ev, err := factCodec{}.Encode(written(k))
				if err != nil {
					return err
				}
				_, err = b.store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprintf("blind-%d", k), Events: []eventstore.EventData{ev}})
				return err
			case 1:
				_, err := eventstore.Dispatch(b.ctx, b.store, ownContext, k, nil)
				return err
			default:
				_, err := eventstore.Dispatch(b.ctx, b.store, byRevision, k, nil)
				return err
			}
		}
		// Each worker runs its pairs one after another; within a pair the
		// reader and the writer are released together.
		errs := race(pairs, workers, func(k int) error {
			start := make(chan struct{})
			var wg sync.WaitGroup
			var rerr, werr error
			wg.Go(func() { <-start; _, rerr = eventstore.Dispatch(b.ctx, b.store, reader, k, nil) })
			wg.Go(func() { <-start; werr = write(k) })
			close(start)
			wg.Wait()
			if rerr != nil {
				return fmt.Errorf("reader: %w", rerr)
			}
			if werr != nil {
				return fmt.Errorf("writer: %w", werr)
			}
			return nil
		})
		for k, err := range errs {
			if err != nil {
				t.Fatalf("pair %d: %v", k, err)
			}
		}

		// Replay the log in position order, counting each tag a:X.
		count := map[string]int{}
		decisions, violations := 0, 0
		var next eventstore.Position
		for {
			page, err := b.store.ReadAfter(b.ctx, next, &eventstore.ReadAfterOpts{Limit: 5000})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range page.Records {
				f, err := factCodec{}.Decode(rec)
				if err != nil {
					t.Fatal(err)
				}
				if f.Type == "Decided" {
					decisions++
					var k int
					if _, err := fmt.Sscanf(f.Tags[0], "r:%d", &k); err != nil {
						t.Fatal(err)
					}
					if tag := fmt.Sprintf("a:%d", k%spread); f.Seen != count[tag] {
						violations++
						t.Errorf("decision %d at position %d saw %d events tagged %s, but %d precede it in position order", k, rec.Position, f.Seen, tag, count[tag])
					}
				}
				for _, tag := range rec.Tags {
					count[tag]++
				}
			}
			if len(page.Records) == 0 {
				break
			}
			next = page.Next
		}
		if decisions != pairs {
			t.Errorf("%d decisions stored, want %d", decisions, pairs)
		}
		if violations > 0 {
			t.Errorf("%d of %d decisions ignored an event that precedes them in position order", violations, pairs)
		}
	})
}
