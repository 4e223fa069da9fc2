package reactors_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// Status, reset and replay with River working: the status follows the
// ledger; a reset and a replay run the reactor again, its effects only
// when their keys are forgotten too; unknown reactors are refused.
func TestResetAndReplayReactor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	runs := map[string]int{}
	addFlaky(t, b, "count", 5, func(e reactors.Effect[string]) error {
		mu.Lock()
		defer mu.Unlock()
		runs[e.Key]++
		return nil
	})
	env := testriver.Start(t, b.pool, b.reg, nil)
	const reactor, notes = "react-count", 20

	// An empty database: nothing reacted, nothing behind.
	sts, err := b.reg.ReactorStatuses(b.ctx, env.Store)
	if err != nil || len(sts) != 1 || sts[0].Name != reactor || sts[0].Reacted != 0 || sts[0].Unreacted != 0 || sts[0].Head != 0 {
		t.Fatalf("status of an empty database: %+v %v", sts, err)
	}
	for i := range notes {
		dispatchNote(t, b, env.Store, fmt.Sprint("n-", i))
	}
	effectRuns := func() (keys, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range runs {
			total += n
		}
		return len(runs), total
	}
	waitRuns := func(what string, total int) {
		t.Helper()
		testriver.WaitFor(t, waitLong, what, func() (bool, error) {
			k, n := effectRuns()
			return k == notes && n == total && b.count(t, `SELECT count(*) FROM factos_reactions WHERE reactor = $1`, reactor) == notes, nil
		})
	}
	waitRuns("the first reactions and effects", notes)
	sts, err = b.reg.ReactorStatuses(b.ctx, env.Store)
	if err != nil || sts[0].Reacted != notes || sts[0].Position != sts[0].Head || sts[0].Unreacted != 0 || sts[0].LastReactedAt == nil {
		t.Fatalf("status after the reactions: %+v %v", sts, err)
	}
	testriver.WaitFor(t, waitLong, "the reaction jobs to complete", func() (bool, error) {
		sts, err := b.reg.ReactorStatuses(b.ctx, env.Store)
		return err == nil && sts[0].PendingJobs == 0, err
	})

	// Reset without the effects: the reactions run again, the effects,
	// whose keys are still recorded, do not.
	res, err := b.reg.ResetReactor(b.ctx, env.Store, reactor, nil)
	if err != nil || res.Reactions != notes || res.Effects != 0 {
		t.Fatalf("reset: %+v %v", res, err)
	}
	sts, err = b.reg.ReactorStatuses(b.ctx, env.Store)
	if err != nil || sts[0].Reacted != 0 || sts[0].Position != 0 || sts[0].Unreacted != notes {
		t.Fatalf("status after the reset: %+v %v", sts, err)
	}
	rp, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: reactor, BatchSize: 7})
	if err != nil || rp.Enqueued != notes || !rp.Done {
		t.Fatalf("replay: %+v %v", rp, err)
	}
	waitRuns("the reactions to run again", notes)

	// Reset with the effects from a position: the reactions and effects
	// after it run again, once each.
	var from eventstore.Position
	if err := b.pool.QueryRow(b.ctx, `SELECT position FROM factos_reactions WHERE reactor = $1 ORDER BY position OFFSET 9 LIMIT 1`, reactor).Scan(&from); err != nil {
		t.Fatal(err)
	}
	res, err = b.reg.ResetReactor(b.ctx, env.Store, reactor, &reactors.ResetOpts{From: from, Effects: true})
	if err != nil || res.Reactions != notes-10 || res.Effects != notes-10 {
		t.Fatalf("reset with effects: %+v %v", res, err)
	}
	if rp, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: reactor, From: from}); err != nil || rp.Enqueued != notes-10 {
		t.Fatalf("replay after the reset with effects: %+v %v", rp, err)
	}
	waitRuns("the effects after the position to run again", notes+notes-10)

	for _, err := range []error{
		func() error { _, err := b.reg.ResetReactor(b.ctx, env.Store, "nope", nil); return err }(),
		func() error {
			_, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: "nope"})
			return err
		}(),
	} {
		if !errors.Is(err, reactors.ErrUnknownReactor) {
			t.Errorf("unknown reactor: %v", err)
		}
	}
}

// Resets racing dispatches and running reactions: once the dispatches end
// and a last replay runs, every record is in the ledger once and every
// effect key ran, none more often than the resets allow (effects are not
// forgotten, so each key runs exactly once).
func TestResetReactorWhileWorkersRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	runs := map[string]int{}
	addFlaky(t, b, "race", 5, func(e reactors.Effect[string]) error {
		mu.Lock()
		defer mu.Unlock()
		runs[e.Key]++
		return nil
	})
	env := testriver.Start(t, b.pool, b.reg, nil)
	const reactor, writers, perWriter = "react-race", 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				dispatchNote(t, b, env.Store, fmt.Sprintf("w%d-%d", w, i))
			}
		}()
	}
	resets := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := b.reg.ResetReactor(b.ctx, env.Store, reactor, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: reactor}); err != nil {
			t.Fatal(err)
		}
		resets++
	}
	if _, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: reactor}); err != nil {
		t.Fatal(err)
	}
	const total = writers * perWriter
	testriver.WaitFor(t, waitLong, "every record reacted to and every effect run", func() (bool, error) {
		mu.Lock()
		n := len(runs)
		mu.Unlock()
		return n == total && b.count(t, `SELECT count(*) FROM factos_reactions WHERE reactor = $1`, reactor) == total, nil
	})
	mu.Lock()
	defer mu.Unlock()
	for k, n := range runs {
		if n != 1 {
			t.Errorf("effect %s ran %d times, want once (its key is never forgotten)", k, n)
		}
	}
	t.Logf("%d resets raced %d dispatches", resets, total)
}

// A reset that forgets effects runs ordered effects again too: their
// finished sequence rows go with their keys, so the replay plans them
// anew instead of failing on the rows' primary key for ever.
func TestResetForgetsOrderedEffects(t *testing.T) {
	t.Parallel()
	const facts = 3
	b := setup(t)
	log := newEffectLog()
	var unordered atomic.Int64
	orderedSetup(t, b, "ord", reactors.HaltSequence, 3, log, nil, &unordered)
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchSteps(t, b, env.Store, []string{"x", "y"}, facts, 2)
	testriver.WaitFor(t, waitLong, "every effect", func() (bool, error) {
		return log.count() == 2*2*facts && unordered.Load() == 2*facts, nil
	})
	res, err := b.reg.ResetReactor(b.ctx, env.Store, "steps", &reactors.ResetOpts{Effects: true})
	if err != nil || res.Reactions != 2*facts || res.Effects != 3*2*facts {
		t.Fatalf("reset: %+v %v; want %d reactions and %d effect keys forgotten", res, err, 2*facts, 3*2*facts)
	}
	if _, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: "steps"}); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "every effect again", func() (bool, error) {
		return log.count() == 2*2*2*facts && unordered.Load() == 2*2*facts, nil
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.overlaps) > 0 {
		t.Errorf("%d effects ran while another of their key ran", len(log.overlaps))
	}
	if n := b.count(t, `SELECT count(*) FROM factos_effect_sequences WHERE state <> 'done'`); n != 0 {
		t.Errorf("%d sequence rows not done after the replay", n)
	}
}

// Job ids are bigints: a filter by a job id past 2^31 finds its effect.
func TestEffectJobsByALargeJobID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.pool.Exec(b.ctx, `SELECT setval('river_job_id_seq', 3000000000)`); err != nil {
		t.Fatal(err)
	}
	addFlaky(t, b, "big", 1, func(reactors.Effect[string]) error { return nil })
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchNote(t, b, env.Store, "n1")
	var id int64
	testriver.WaitFor(t, waitLong, "the effect job", func() (bool, error) {
		err := b.pool.QueryRow(b.ctx, `SELECT coalesce(max(id), 0) FROM river_job WHERE kind = $1`, reactors.EffectKindPrefix+"big").Scan(&id)
		return id > 3000000000, err
	})
	jobs, err := reactors.EffectJobs(b.ctx, b.pool, reactors.EffectJobFilter{JobID: id})
	if err != nil || len(jobs) != 1 || jobs[0].JobID != id {
		t.Fatalf("EffectJobs by job id %d: %+v %v", id, jobs, err)
	}
	if _, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{JobID: id}); err != nil {
		t.Fatalf("ListEffects by job id %d: %v", id, err)
	}
}
