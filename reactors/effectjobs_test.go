package reactors_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// An unordered effect that failed for good (cancelled: a permanent
// error) is found by its state, retried
// (it runs again), retried again after River's cleaner deleted its job
// (planned anew from the effect-key ledger, which never blocks a
// deliberate re-run), and refused when it is neither failed nor gone.
func TestOperatorRetriesUnorderedEffects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs, fails atomic.Int64
	var healed atomic.Bool
	err := reactors.AddReactor(b.reg, reactors.Reactor[step]{
		Name: "steps", Codec: stepCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("Step")),
		React: func(rec eventstore.Record[step]) ([]eventstore.PlannedEffect, error) {
			return []eventstore.PlannedEffect{{Kind: "flaky", Key: "f:" + rec.ID.String(), Args: stepEffect{Entity: rec.Event.Entity, N: rec.Event.N}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = reactors.AddEffect(b.reg, reactors.EffectHandler[stepEffect]{Kind: "flaky",
		Handle: func(context.Context, reactors.Effect[stepEffect]) error {
			if !healed.Load() {
				fails.Add(1)
				return reactors.Permanent(errors.New("downstream refuses"))
			}
			runs.Add(1)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchSteps(t, b, env.Store, []string{"x", "y"}, 1, 2)

	var failed []reactors.EffectJob
	testriver.WaitFor(t, waitLong, "both effects cancelled", func() (bool, error) {
		var err error
		failed, err = reactors.EffectJobs(b.ctx, b.pool, reactors.EffectJobFilter{Kind: "flaky", State: "cancelled"})
		return len(failed) == 2, err
	})
	for _, e := range failed {
		if e.OrderingKey != "" || e.Sequence != "" || e.Reactor != "steps" || e.EventType != "Step" || e.LastError == "" || e.JobID == 0 {
			t.Fatalf("cancelled effect %+v", e)
		}
	}
	counts, err := reactors.EffectCounts(b.ctx, b.pool)
	if err != nil || len(counts) != 1 || counts[0] != (reactors.EffectKindCount{Kind: "flaky", State: "cancelled", Jobs: 2}) {
		t.Fatalf("counts %+v %v", counts, err)
	}
	byJob, err := reactors.EffectJobs(b.ctx, b.pool, reactors.EffectJobFilter{JobID: failed[0].JobID})
	if err != nil || len(byJob) != 1 || byJob[0].EffectKey != failed[0].EffectKey {
		t.Fatalf("by job: %+v %v", byJob, err)
	}
	key, err := reactors.EffectKeyOfJob(b.ctx, b.pool, failed[1].JobID)
	if err != nil || key != failed[1].EffectKey {
		t.Fatalf("key of job: %q %v", key, err)
	}

	healed.Store(true)
	// The first: its cancelled job runs again.
	if err := b.reg.RetryEffect(b.ctx, env.Store, failed[0].EffectKey); err != nil {
		t.Fatal(err)
	}
	// The second: River's cleaner deleted its job; it is planned again.
	if _, err := b.pool.Exec(b.ctx, `DELETE FROM river_job WHERE id = $1`, failed[1].JobID); err != nil {
		t.Fatal(err)
	}
	if err := b.reg.RetryEffect(b.ctx, env.Store, failed[1].EffectKey); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "both effects run again", func() (bool, error) {
		done, err := reactors.EffectJobs(b.ctx, b.pool, reactors.EffectJobFilter{Kind: "flaky", State: "completed"})
		return len(done) == 2 && runs.Load() == 2, err
	})
	if fails.Load() != 2 {
		t.Errorf("%d failed runs, want 2", fails.Load())
	}

	// Refused: a completed effect, and an unknown key.
	var se *reactors.EffectStateError
	if err := b.reg.RetryEffect(b.ctx, env.Store, failed[0].EffectKey); !errors.As(err, &se) {
		t.Errorf("retry completed: %v", err)
	}
	if err := b.reg.SkipEffect(b.ctx, b.pool, failed[0].EffectKey); !errors.As(err, &se) {
		t.Errorf("skip completed: %v", err)
	}
	if err := b.reg.RetryEffect(b.ctx, env.Store, "nope"); !errors.Is(err, reactors.ErrEffectNotFound) {
		t.Errorf("retry unknown: %v", err)
	}
	if _, err := reactors.EffectKeyOfJob(b.ctx, b.pool, 1<<40); !errors.Is(err, reactors.ErrEffectNotFound) {
		t.Errorf("key of unknown job: %v", err)
	}
	if runs.Load() != 2 {
		t.Errorf("%d runs after the refusals, want 2", runs.Load())
	}
}
