package reactors_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// An operator finds a halted key, its head and its waiting effects, skips
// one halted head (its key goes on without it) and retries another whose
// job River's cleaner deleted (it is planned again from its record and
// runs, and its key goes on after it).
func TestOperatorSkipsAndRetriesHaltedHeads(t *testing.T) {
	t.Parallel()
	const facts = 5
	b := setup(t)
	log := newEffectLog()
	var qFixed atomic.Bool
	var unordered atomic.Int64
	orderedSetup(t, b, "admin", reactors.HaltSequence, 0, log, func(e stepEffect) error {
		switch {
		case e.Entity == "p" && e.N == 1 && e.Part == 0:
			return reactors.Permanent(errors.New("poison p"))
		case e.Entity == "q" && e.N == 2 && e.Part == 1 && !qFixed.Load():
			return reactors.Permanent(errors.New("poison q"))
		}
		return nil
	}, &unordered)
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchSteps(t, b, env.Store, []string{"ok", "p", "q"}, facts, 3)

	var halted []reactors.KeyStatus
	testriver.WaitFor(t, waitLong, "every effect planned, all that can run done, and two halted keys", func() (bool, error) {
		// ok's 10 effects, p's first 2 and q's first 5 ran.
		// (A handler logs its effect before its worker marks it done: no
		// effect may still be running.)
		if b.count(t, `SELECT count(*) FROM factos_effect_sequences`) != 3*2*facts || log.count() != 2*facts+2+5 ||
			b.count(t, `SELECT count(*) FROM factos_effect_sequences WHERE state = 'running'`) != 0 {
			return false, nil
		}
		var err error
		halted, err = reactors.Sequences(b.ctx, b.pool, reactors.SequencesFilter{HaltedOnly: true})
		return len(halted) == 2, err
	})
	p, q := halted[0], halted[1]
	// The metrics show them.
	reg := prometheus.NewRegistry()
	if _, err := reactors.NewMetrics(reg, b.pool); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				got[f.GetName()+"/"+l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"factos_effect_sequence_keys/halted":     2,
		"factos_effect_sequence_keys/running":    0,
		"factos_effect_sequence_keys/waiting":    0,
		"factos_effect_sequence_effects/failed":  2,
		"factos_effect_sequence_effects/waiting": 2*facts - 3 + 2*facts - 6,
		"factos_effect_sequence_effects/running": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if p.OrderingKey != "entity:p" || !p.Halted || p.Head.State != reactors.EffectFailed || p.Head.JobState != "cancelled" ||
		!strings.Contains(p.Head.LastError, "poison p") || p.Unfinished != 2*facts-2 {
		t.Fatalf("halted key p: %+v", p)
	}
	if q.OrderingKey != "entity:q" || q.Unfinished != 2*facts-5 {
		t.Fatalf("halted key q: %+v", q)
	}
	all, err := reactors.Sequences(b.ctx, b.pool, reactors.SequencesFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("keys with unfinished effects: %+v %v", all, err)
	}
	waiting, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{OrderingKey: "entity:p", State: reactors.EffectWaiting})
	if err != nil || len(waiting) != 2*facts-3 || waiting[0].JobState != "pending" {
		t.Fatalf("p's waiting effects: %d %v", len(waiting), err)
	}
	byJob, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{JobID: p.Head.JobID})
	if err != nil || len(byJob) != 1 || byJob[0].EffectKey != p.Head.EffectKey {
		t.Fatalf("by job id: %+v %v", byJob, err)
	}
	if n, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{Kind: "admin", Limit: 1000}); err != nil || len(n) != 3*2*facts {
		t.Fatalf("by kind: %d %v", len(n), err)
	}

	// Refused: unknown keys, and effects in the wrong state.
	var se *reactors.EffectStateError
	if err := b.reg.SkipEffect(b.ctx, b.pool, "nope"); !errors.Is(err, reactors.ErrEffectNotFound) {
		t.Errorf("skip unknown: %v", err)
	}
	if err := b.reg.RetryEffect(b.ctx, env.Store, waiting[0].EffectKey); !errors.As(err, &se) {
		t.Errorf("retry waiting: %v", err)
	}
	done, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{OrderingKey: "entity:ok", State: reactors.EffectDone, Limit: 1})
	if err != nil || len(done) != 1 {
		t.Fatal(done, err)
	}
	if err := b.reg.SkipEffect(b.ctx, b.pool, done[0].EffectKey); !errors.As(err, &se) {
		t.Errorf("skip done: %v", err)
	}

	// Skip p's head: p goes on without it.
	if err := b.reg.SkipEffect(b.ctx, b.pool, p.Head.EffectKey); err != nil {
		t.Fatal(err)
	}
	// q's cancelled job is deleted (River's cleaner, after a day); the
	// cause is fixed; the retry plans it again and q goes on.
	if _, err := b.pool.Exec(b.ctx, `DELETE FROM river_job WHERE id = $1`, q.Head.JobID); err != nil {
		t.Fatal(err)
	}
	qFixed.Store(true)
	if err := b.reg.RetryEffect(b.ctx, env.Store, q.Head.EffectKey); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "every effect but p's skipped one", func() (bool, error) {
		return log.count() == 3*2*facts-1, nil
	})
	checkOrder(t, log, []string{"ok", "p", "q"}, func(e string) []int {
		if e == "p" {
			return []int{0, 2, 3, 4} // part 0 of fact 1 skipped
		}
		return upTo(facts)
	})
	retried, err := reactors.ListEffects(b.ctx, b.pool, reactors.EffectFilter{EffectKey: q.Head.EffectKey})
	if err != nil || len(retried) != 1 || retried[0].State != reactors.EffectDone || retried[0].JobID == q.Head.JobID {
		t.Fatalf("q's retried effect: %+v %v", retried, err)
	}
	// A handler logs its effect before its worker marks the effect done
	// and completes its job (finishOrdered): the last one may still be
	// committing.
	testriver.WaitFor(t, waitLong, "no key left unfinished", func() (bool, error) {
		left, err := reactors.Sequences(b.ctx, b.pool, reactors.SequencesFilter{})
		return len(left) == 0, err
	})
}
