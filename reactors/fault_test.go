package reactors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/riverqueue/river"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/outbox"
	"github.com/factos-go/factos/reactors"
)

// A reaction that dies at any step — before or after each write of its
// transaction, or after the commit — neither loses nor duplicates an effect
// enqueue: River retries it, and the retry finds either nothing or
// everything.
func TestReactionCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, step := range reactors.Steps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
				t.Fatal(err)
			}
			// Each reaction fails once, at this step.
			var mu sync.Mutex
			crashed := map[int64]bool{}
			reactors.SetFault(b.reg, func(at string, position int64) error {
				mu.Lock()
				defer mu.Unlock()
				if at != step || crashed[position] {
					return nil
				}
				crashed[position] = true
				return fmt.Errorf("crash at %s", at)
			})
			env := testriver.Start(t, b.pool, b.reg, nil)
			b.sell(t, env.Store, "c1", 3)
			testriver.WaitFor(t, waitLong, "every job to finish", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0 &&
					b.count(t, `SELECT count(*) FROM ticket_announcements`) == 3, nil
			})
			mu.Lock()
			if len(crashed) != 3 {
				t.Errorf("%d reactions crashed at %s, want 3", len(crashed), step)
			}
			mu.Unlock()
			for what, sql := range map[string]string{
				"effect jobs":          `SELECT count(*) FROM river_job WHERE kind LIKE 'factos.effect.%'`,
				"distinct effect keys": `SELECT count(DISTINCT args->>'key') FROM river_job WHERE kind LIKE 'factos.effect.%'`,
				"effect ledger rows":   `SELECT count(*) FROM factos_effects`,
				"reaction ledger rows": `SELECT count(*) FROM factos_reactions`,
				"reaction jobs":        `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions'`,
			} {
				if n := b.count(t, sql); n != 3 {
					t.Errorf("%s: %d, want 3", what, n)
				}
			}
		})
	}
}

// Two reaction jobs for the same record (say, one inserted by hand without
// a unique key) enqueue its effects once.
func TestDuplicateReactionJobsEnqueueEffectsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{NoStart: true})
	b.sell(t, env.Store, "c1", 2)
	rows, err := env.Store.ReadAfter(b.ctx, 0, &eventstore.ReadAfterOpts{Query: &eventstore.Query{Items: []eventstore.QueryItem{eventstore.Types(tickets.TypeTicketSold)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range rows.Records {
		for range 3 {
			_, err := env.Client.Insert(b.ctx, outbox.ReactionArgs{Reactors: []string{tickets.ReactorAnnounceSales}, Events: []outbox.EventRef{{Position: int64(rec.Position), Type: rec.Type}}},
				&river.InsertOpts{Queue: outbox.DefaultQueue})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	if err := env.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Stop(context.Background()) })
	testriver.WaitFor(t, waitLong, "every job to finish", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0 && b.count(t, `SELECT count(*) FROM river_job`) == 2*4+2, nil
	})
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind LIKE 'factos.effect.%'`); n != 2 {
		t.Errorf("%d effect jobs for 2 records, want 2", n)
	}
	if n := b.count(t, `SELECT count(*) FROM ticket_announcements`); n != 2 {
		t.Errorf("%d announcements, want 2", n)
	}
}
