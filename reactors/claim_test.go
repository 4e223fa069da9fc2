package reactors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// A backlog of 10,000 reaction jobs, worked through by reactions that
// claim waiting jobs beside their own, while some reactors fail once and
// some reactions crash once at one of their steps (rolling back what they
// claimed): every record gets each reactor's reaction and each effect runs
// exactly once, every reaction job completes, and each job's attempts are
// its failures plus one, whoever ran it.
func TestReactionsClaimWaitingJobs(t *testing.T) {
	t.Parallel()
	const records = 10_000
	for _, tc := range []struct {
		name  string
		batch int
	}{
		{"default batch", 0},
		{"batch of 7", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx, pool := b.ctx, b.pool
			promReg := prometheus.NewRegistry()
			metrics, err := reactors.NewMetrics(promReg, pool)
			if err != nil {
				t.Fatal(err)
			}
			reg := reactors.NewRegistry(&reactors.Config{ReactionBatchSize: tc.batch, Metrics: metrics})
			b.reg = reg

			// Two reactors on every note; "flaky" fails the first time it
			// meets a record whose position is a multiple of 50, and a
			// reaction holding a job whose first record's position is a
			// multiple of 97 crashes once, at the step position/97 picks.
			var (
				mu      sync.Mutex
				failed  = map[int64]bool{}
				crashed = map[int64]bool{}
				ran     = map[string]int{}
			)
			for _, name := range []string{"steady", "flaky"} {
				err := reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{
					Name: name, Codec: noteCodec{b.codec}, Subscribe: eventstore.NewQuery(eventstore.Types("Note")),
					React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
						p := int64(rec.Position)
						if name == "flaky" && p%50 == 0 {
							mu.Lock()
							first := !failed[p]
							failed[p] = true
							mu.Unlock()
							if first {
								return nil, fmt.Errorf("flaky on %d", p)
							}
						}
						return []eventstore.PlannedEffect{{Kind: "note", Key: fmt.Sprintf("%s:%d", name, p), Args: name}}, nil
					},
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			addEffect(t, b, "note", func(e reactors.Effect[string]) error {
				mu.Lock()
				defer mu.Unlock()
				ran[e.Key]++
				return nil
			})
			reactors.SetFault(reg, func(step string, position int64) error {
				if position%97 != 0 || reactors.Steps[int(position/97)%len(reactors.Steps)] != step {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				if crashed[position] {
					return nil
				}
				crashed[position] = true
				return fmt.Errorf("crash at %s on %d", step, position)
			})

			// The backlog: one reaction job per append, from 16 writers,
			// before River starts.
			env := testriver.Start(t, pool, reg, &testriver.Opts{NoStart: true})
			appendNotes(t, b, env.Store, records, 16)
			if err := env.Run(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				stopCtx, stop := context.WithTimeout(ctx, waitLong)
				defer stop()
				if err := env.Stop(stopCtx); err != nil {
					t.Errorf("error stopping River and the sequencer: %v", err)
				}
			})
			testriver.WaitFor(t, 4*waitLong, "every job to finish", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0 &&
					b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'factos.effect.note'`) == 2*records, nil
			})

			for _, c := range []struct {
				what string
				sql  string
				want int
			}{
				{"reaction jobs", `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions'`, records},
				{"steady reactions", `SELECT count(*) FROM factos_reactions WHERE reactor = 'steady'`, records},
				{"flaky reactions", `SELECT count(*) FROM factos_reactions WHERE reactor = 'flaky'`, records},
				{"effect ledger rows", `SELECT count(*) FROM factos_effects`, 2 * records},
				{"distinct effect keys", `SELECT count(DISTINCT args->>'key') FROM river_job WHERE kind = 'factos.effect.note'`, 2 * records},
				// Whoever ran a job, River or a claim, counted its attempt
				// and kept its error.
				{"reaction jobs whose attempts are not their errors plus one",
					`SELECT count(*) FROM river_job WHERE kind = 'factos.reactions' AND attempt <> 1 + coalesce(cardinality(errors), 0)`, 0},
				// A flaky failure stays with the job of its record; a crash
				// ends the whole reaction, so the reaction's own job keeps
				// the error of any job it held.
				{"flaky failures recorded on a job without their record",
					`SELECT count(*) FROM river_job, unnest(errors) e
					WHERE kind = 'factos.reactions' AND e->>'error' LIKE '%flaky on%'
						AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(args->'events') ev
							WHERE e->>'error' ~ ('flaky on ' || (ev->>'position') || '\M'))`, 0},
				{"crashes at a position that should not crash",
					`SELECT count(*) FROM river_job, unnest(errors) e
					WHERE kind = 'factos.reactions' AND e->>'error' LIKE 'crash at%'
						AND substring(e->>'error' from 'on (\d+)$')::int8 % 97 <> 0`, 0},
				{"reaction job errors that are neither a flaky failure nor a crash",
					`SELECT count(*) FROM river_job, unnest(errors) e
					WHERE kind = 'factos.reactions' AND e->>'error' NOT LIKE '%flaky on%' AND e->>'error' NOT LIKE 'crash at%'`, 0},
			} {
				if got := b.count(t, c.sql); got != c.want {
					t.Errorf("%s: %d, want %d", c.what, got, c.want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ran) != 2*records {
				t.Errorf("%d effects ran, want %d", len(ran), 2*records)
			}
			for key, n := range ran {
				if n != 1 {
					t.Errorf("effect %s ran %d times", key, n)
				}
			}
			// A flaky failure rolled back by a crash in the same reaction
			// leaves no error; the others left theirs.
			if n := b.count(t, `SELECT count(*) FROM river_job, unnest(errors) e WHERE kind = 'factos.reactions' AND e->>'error' LIKE '%flaky on%'`); n == 0 {
				t.Error("no flaky failure was recorded")
			}
			if len(crashed) == 0 {
				t.Error("no reaction crashed: the test proves nothing about claims rolled back")
			}
			if n := claimedTotal(t, promReg); n == 0 {
				t.Error("no reaction claimed a job: the test proves nothing about claims")
			} else {
				t.Logf("%.0f of %d reaction jobs were claimed; %d reactions crashed", n, records, len(crashed))
			}
		})
	}
}

// claimedTotal reads factos_reaction_jobs_claimed_total from reg.
func claimedTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "factos_reaction_jobs_claimed_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("factos_reaction_jobs_claimed_total is not registered")
	return 0
}

// appendNotes appends n Note events, one per append, from writers
// goroutines.
func appendNotes(t *testing.T, b *bundle, store *eventstore.Store, n, writers int) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, writers)
	for range writers {
		go func() {
			for i := range next {
				if _, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprint("n", i), Events: []eventstore.EventData{{Type: "Note"}}}); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
