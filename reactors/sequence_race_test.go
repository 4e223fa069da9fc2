package reactors_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// passes runs the sequencer's pass a few times in the test's goroutine:
// whatever it would release, it has released when passes returns.
func passes(t *testing.T, b *bundle) {
	t.Helper()
	for range 3 {
		if _, err := b.reg.Sequencer().Pass(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// An effect placed below one of its key that is running — a skipped effect
// retried after the key went on, a reaction retried or replayed late —
// waits until that one has finished: a key runs one effect at a time.
func TestEffectBelowARunningOneWaitsForIt(t *testing.T) {
	t.Parallel()
	const facts = 6
	b := setup(t)
	log := newEffectLog()
	var poisoned atomic.Bool
	poisoned.Store(true)
	block, started := make(chan struct{}), make(chan struct{}, 1)
	var unordered atomic.Int64
	orderedSetup(t, b, "race", reactors.HaltSequence, 0, log, func(e stepEffect) error {
		switch {
		case e.Entity == "x" && e.N == 1 && e.Part == 0 && poisoned.Load():
			return reactors.Permanent(errors.New("poison"))
		case e.Entity == "x" && e.N == 3 && e.Part == 0:
			select {
			case started <- struct{}{}:
			default:
			}
			<-block
		}
		return nil
	}, &unordered)
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchSteps(t, b, env.Store, []string{"x"}, facts, 1)
	var failed string
	testriver.WaitFor(t, waitLong, "the key to halt", func() (bool, error) {
		err := b.pool.QueryRow(b.ctx, `SELECT coalesce(max(effect_key), '') FROM factos_effect_sequences WHERE state = 'failed'`).Scan(&failed)
		return failed != "", err
	})
	// Skipped, the key goes on, up to the effect that blocks.
	if err := b.reg.SkipEffect(b.ctx, b.pool, failed); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "the later effect to run", func() (bool, error) {
		select {
		case <-started:
			return true, nil
		default:
			return false, nil
		}
	})
	// Retried while the later one runs: planned below it, it must wait.
	poisoned.Store(false)
	if err := b.reg.RetryEffect(b.ctx, env.Store, failed); err != nil {
		t.Fatal(err)
	}
	passes(t, b)
	var state string
	if err := b.pool.QueryRow(b.ctx, `SELECT state FROM factos_effect_sequences WHERE effect_key = $1`, failed).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "waiting" {
		t.Errorf("the retried effect is %s while a later effect of its key runs, want waiting", state)
	}
	close(block)
	testriver.WaitFor(t, waitLong, "every effect", func() (bool, error) { return log.count() == 2*facts, nil })
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.overlaps) > 0 {
		t.Errorf("%d effects ran while another of their key ran: %v", len(log.overlaps), log.overlaps)
	}
}

// An operator's skip of a waiting effect that commits while the sequencer
// releases it wins: the effect stays skipped, and its key goes on.
func TestSkipRacingTheReleaseWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	log := newEffectLog()
	var unordered atomic.Int64
	orderedSetup(t, b, "skiprace", reactors.HaltSequence, 0, log, nil, &unordered)
	// A reactor that fails until told otherwise holds the watermark, so
	// that the head waits.
	var hold atomic.Bool
	hold.Store(true)
	err := reactors.AddReactor(b.reg, reactors.Reactor[step]{
		Name: "holder", Codec: stepCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("Step")),
		React: func(eventstore.Record[step]) ([]eventstore.PlannedEffect, error) {
			if hold.Load() {
				return nil, errors.New("holding the watermark")
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchSteps(t, b, env.Store, []string{"x"}, 1, 1)
	var head string
	testriver.WaitFor(t, waitLong, "the head planned", func() (bool, error) {
		err := b.pool.QueryRow(b.ctx, `SELECT coalesce(min(effect_key), '') FROM factos_effect_sequences WHERE state = 'waiting'`).Scan(&head)
		return head != "", err
	})
	// The row held, as a slow transaction would; the skip queues on it,
	// then the sequencer, once the watermark passes the head.
	tx, err := b.pool.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(b.ctx, `SELECT 1 FROM factos_effect_sequences WHERE effect_key = $1 FOR UPDATE`, head); err != nil {
		t.Fatal(err)
	}
	skipped := make(chan error, 1)
	go func() { skipped <- b.reg.SkipEffect(b.ctx, b.pool, head) }()
	lockWaiters := func(n int) func() (bool, error) {
		return func() (bool, error) {
			return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) >= n, nil
		}
	}
	testriver.WaitFor(t, waitLong, "the skip to wait for the row", lockWaiters(1))
	hold.Store(false)
	testriver.WaitFor(t, waitLong, "the sequencer to wait for it too", lockWaiters(2))
	if err := tx.Commit(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-skipped; err != nil {
		t.Fatalf("skip: %v", err)
	}
	passes(t, b)
	es, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{OrderingKey: "entity:x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].EffectKey != head || es[0].State != reactors.EffectSkipped {
		t.Fatalf("after a skip that succeeded: %+v, want %s skipped", es, head)
	}
	halted, err := reactors.Sequences(b.ctx, b.pool, reactors.SequencesFilter{HaltedOnly: true})
	if err != nil || len(halted) != 0 {
		t.Fatalf("halted keys after the skip: %+v, %v", halted, err)
	}
}
