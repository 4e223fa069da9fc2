package eventstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
)

func appendCmd(b *bundle, stream, id string, fp []byte) (*eventstore.AppendResult, error) {
	return b.store.Append(b.ctx, eventstore.AppendRequest{Stream: stream, CommandID: id, Fingerprint: fp,
		Events: []eventstore.EventData{{Type: "Commanded", Tags: []string{"t"}}}})
}

// A command id is bound to its fingerprint: the same command answers as a
// duplicate, another command under the id is refused with nothing
// written, and ids without a fingerprint (old rows, callers that give
// none) are compared by stream only.
func TestCommandIDFingerprint(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	fpA := eventstore.CommandFingerprint("buy", []byte(`{"seat":1}`))
	fpB := eventstore.CommandFingerprint("buy", []byte(`{"seat":2}`))
	if string(fpA) == string(fpB) || string(fpA) != string(eventstore.CommandFingerprint("buy", []byte(`{"seat":1}`))) {
		t.Fatal("fingerprints are not a function of name and payload")
	}
	if string(eventstore.CommandFingerprint("a", []byte("bc"))) == string(eventstore.CommandFingerprint("ab", []byte("c"))) {
		t.Fatal("name and payload are not separated")
	}

	first, err := appendCmd(b, "s1", "id-1", fpA)
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := appendCmd(b, "s1", "id-1", fpA)
	if err != nil || !again.Duplicate || again.Records[0].Position != first.Records[0].Position {
		t.Fatalf("same command again: %+v %v", again, err)
	}
	before := b.counts(t)
	_, err = appendCmd(b, "s1", "id-1", fpB)
	var reused *eventstore.CommandIDReusedError
	if !errors.As(err, &reused) || reused.CommandID != "id-1" || reused.Stream != "s1" || reused.PriorStream != "s1" {
		t.Fatalf("another command under the id: err = %v, want a *CommandIDReusedError", err)
	}
	if !errors.Is(err, eventstore.ErrCommandIDReused) || !errors.Is(err, eventstore.ErrInvalidInput) || errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("%v does not match ErrCommandIDReused and ErrInvalidInput only", err)
	}
	if after := b.counts(t); after != before {
		t.Fatalf("refused append wrote rows: %+v -> %+v", before, after)
	}
	// A dispatch that gives no fingerprint cannot be compared: it is
	// answered by stream, as before fingerprints.
	if res, err := appendCmd(b, "s1", "id-1", nil); err != nil || !res.Duplicate {
		t.Fatalf("no fingerprint: %+v %v", res, err)
	}

	// A row stored without one, as every row before migration 6, accepts
	// any fingerprint.
	if _, err := appendCmd(b, "s2", "id-old", nil); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := b.pool.QueryRow(b.ctx, `SELECT fingerprint FROM factos_commands WHERE id = 'id-old'`).Scan(&stored); err != nil || stored != nil {
		t.Fatalf("fingerprint of an id stored without one: %x %v", stored, err)
	}
	if res, err := appendCmd(b, "s2", "id-old", fpB); err != nil || !res.Duplicate {
		t.Fatalf("old row: %+v %v", res, err)
	}

	// A decision with no events records its fingerprint too.
	noop := eventstore.Handler[string, eventstore.EventData, int]{
		Decider: eventstore.Decider[string, eventstore.EventData, int]{
			Decide: func(int, string) ([]eventstore.EventData, error) { return nil, nil },
			Evolve: func(n int, _ eventstore.EventData) int { return n + 1 },
		},
		Codec:  rawCodec{},
		Stream: func(string) string { return "s3" },
	}
	if _, err := eventstore.Dispatch(b.ctx, b.store, noop, "x", &eventstore.DispatchOpts{CommandID: "id-noop", Fingerprint: fpA}); err != nil {
		t.Fatal(err)
	}
	if res, err := eventstore.Dispatch(b.ctx, b.store, noop, "x", &eventstore.DispatchOpts{CommandID: "id-noop", Fingerprint: fpA}); err != nil || !res.Duplicate {
		t.Fatalf("noop again: %+v %v", res, err)
	}
	if _, err := eventstore.Dispatch(b.ctx, b.store, noop, "x", &eventstore.DispatchOpts{CommandID: "id-noop", Fingerprint: fpB}); !errors.Is(err, eventstore.ErrCommandIDReused) {
		t.Fatalf("noop with another fingerprint: %v", err)
	}

	// Bad fingerprints are refused before anything runs.
	for _, tc := range []struct {
		name, id string
		fp       []byte
	}{
		{"without id", "", fpA},
		{"empty", "id-x", []byte{}},
		{"too long", "id-x", make([]byte, eventstore.MaxFingerprintBytes+1)},
	} {
		_, err := appendCmd(b, "s4", tc.id, tc.fp)
		var inv *eventstore.InvalidInputError
		if !errors.As(err, &inv) || inv.Field != "fingerprint" {
			t.Errorf("%s: err = %v, want an *InvalidInputError for the fingerprint", tc.name, err)
		}
	}
}

// Dispatches racing under the same ids with two different commands: for
// each id exactly one command wins; every copy of it answers with the one
// append, every copy of the other is refused, and the log holds one event
// per id.
func TestCommandIDFingerprintRace(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t, &eventstore.Config{LockStrategy: strategy})
			const ids, copies = 40, 8 // copies per id, half of each command
			type outcome struct {
				cmd int
				res *eventstore.AppendResult
				err error
			}
			out := make([][]outcome, ids)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range ids {
				out[i] = make([]outcome, copies)
				for j := range copies {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						cmd := j % 2
						fp := eventstore.CommandFingerprint("cmd", []byte(fmt.Sprint(cmd)))
						res, err := appendCmd(b, fmt.Sprintf("race-%d", i), fmt.Sprintf("race-%d", i), fp)
						out[i][j] = outcome{cmd, res, err}
					}()
				}
			}
			close(start)
			wg.Wait()
			for i, list := range out {
				winner, firsts := -1, 0
				for _, o := range list {
					if o.err == nil {
						if winner >= 0 && winner != o.cmd {
							t.Fatalf("id %d: both commands succeeded", i)
						}
						winner = o.cmd
						if !o.res.Duplicate {
							firsts++
						}
					}
				}
				if winner < 0 || firsts != 1 {
					t.Fatalf("id %d: winner %d, %d first appends", i, winner, firsts)
				}
				for j, o := range list {
					if o.cmd != winner && !errors.Is(o.err, eventstore.ErrCommandIDReused) {
						t.Fatalf("id %d copy %d (the other command): %v, want ErrCommandIDReused", i, j, o.err)
					}
				}
			}
			if c := b.counts(t); c.events != ids || c.commands != ids {
				t.Fatalf("counts %+v, want %d events and commands", c, ids)
			}
		})
	}
}

// A pass deletes exactly the ids older than the retention, in batches;
// a deleted id then runs as a new command (the documented trade-off).
// Cleaners racing over the same rows delete each row once, without errors.
func TestCommandCleaner(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.pool.Exec(b.ctx, `INSERT INTO factos_commands (id, stream, positions, recorded_at)
		SELECT 'old-' || g, 's', '{}', clock_timestamp() - interval '8 days' FROM generate_series(1, 2500) g`); err != nil {
		t.Fatal(err)
	}
	kept, err := appendCmd(b, "s", "new-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := appendCmd(b, "s", "old-aged", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(b.ctx, `UPDATE factos_commands SET recorded_at = recorded_at - interval '7 days 1 minute' WHERE id = 'old-aged'`); err != nil {
		t.Fatal(err)
	}

	const cleaners = 4
	var wg sync.WaitGroup
	deleted := make([]int64, cleaners)
	errs := make([]error, cleaners)
	for i := range cleaners {
		c, err := eventstore.NewCommandCleaner(b.store, &eventstore.CommandCleanerConfig{BatchSize: 97})
		if err != nil {
			t.Fatal(err)
		}
		if c.Config().Retention != eventstore.DefaultCommandRetention {
			t.Fatalf("retention %v", c.Config().Retention)
		}
		wg.Add(1)
		go func() { defer wg.Done(); deleted[i], errs[i] = c.Clean(b.ctx) }()
	}
	wg.Wait()
	var total int64
	for i := range cleaners {
		if errs[i] != nil {
			t.Fatalf("cleaner %d: %v", i, errs[i])
		}
		total += deleted[i]
	}
	// A cleaner that found the lock taken ended its pass; if the holder
	// ended between two of its batches' locks, one more pass finishes.
	c, _ := eventstore.NewCommandCleaner(b.store, nil)
	rest, err := c.Clean(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total+rest != 2501 {
		t.Fatalf("deleted %d + %d, want 2501", total, rest)
	}
	var ids []string
	if err := b.pool.QueryRow(b.ctx, `SELECT array_agg(id ORDER BY id) FROM factos_commands`).Scan(&ids); err != nil || len(ids) != 1 || ids[0] != "new-1" {
		t.Fatalf("left %v %v, want new-1", ids, err)
	}
	if res, err := appendCmd(b, "s", "new-1", nil); err != nil || !res.Duplicate || res.Records[0].Position != kept.Records[0].Position {
		t.Fatalf("kept id: %+v %v", res, err)
	}
	if res, err := appendCmd(b, "s", "old-aged", nil); err != nil || res.Duplicate || res.Records[0].Position == old.Records[0].Position {
		t.Fatalf("expired id: %+v %v, want a new append", res, err)
	}

	// The background loop runs a pass at once.
	if _, err := b.pool.Exec(b.ctx, `UPDATE factos_commands SET recorded_at = recorded_at - interval '30 days'`); err != nil {
		t.Fatal(err)
	}
	bg, err := eventstore.NewCommandCleaner(b.store, &eventstore.CommandCleanerConfig{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := bg.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bg.Stop(b.ctx) })
	deadline := time.Now().Add(time.Minute)
	for b.counts(t).commands != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background pass did not delete the expired ids")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := bg.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}

	for _, cfg := range []eventstore.CommandCleanerConfig{{Retention: -1}, {Interval: -1}, {BatchSize: -1}} {
		if _, err := eventstore.NewCommandCleaner(b.store, &cfg); !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// The observer (and so factos_dispatches_total) tells a duplicate from a
// commit: a retried command appends nothing.
func TestObserverReportsDuplicates(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []eventstore.DispatchInfo
	b := setup(t, &eventstore.Config{Observer: func(i eventstore.DispatchInfo) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, i)
	}})
	for range 2 {
		if _, err := appendCmd(b, "s1", "id-1", nil); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Outcome != "committed" || seen[0].Events != 1 || seen[1].Outcome != "duplicate" || seen[1].Events != 0 {
		t.Fatalf("observed %+v, want committed with 1 event, then duplicate with none", seen)
	}
}
