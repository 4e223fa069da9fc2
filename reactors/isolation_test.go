package reactors_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// refuseKeysSQL makes the database refuse the effect keys that start with
// "refused:", the way it refuses a row that breaks a constraint: a failure
// the reactor's Go side cannot see coming.
const refuseKeysSQL = `CREATE FUNCTION test_refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.key LIKE 'refused:%' THEN RAISE EXCEPTION 'test refuses effect key %', NEW.key; END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_key BEFORE INSERT ON factos_effects FOR EACH ROW EXECUTE FUNCTION test_refuse_key();`

// refuseKeys installs refuseKeysSQL in b's database.
func refuseKeys(t *testing.T, b *bundle) {
	t.Helper()
	if _, err := b.pool.Exec(b.ctx, refuseKeysSQL); err != nil {
		t.Fatal(err)
	}
}

// effectRuns counts the runs of each effect key of a kind.
type effectRuns struct {
	mu  sync.Mutex
	ran map[string]int
}

// countEffects registers a handler of kind that counts its runs.
func countEffects(t *testing.T, b *bundle, kind string) *effectRuns {
	t.Helper()
	r := &effectRuns{ran: map[string]int{}}
	addEffect(t, b, kind, func(e reactors.Effect[string]) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ran[e.Key]++
		return nil
	})
	return r
}

// snapshot is a copy of the counts so far.
func (r *effectRuns) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.ran)
}

// misbehaviours are the ways a reactor fails on a record: each must hold
// back that reactor's reaction to that record and nothing else.
var misbehaviours = []struct {
	name string
	plan func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error)
	want string // in the job's error
}{
	{"returns an error", func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		return nil, errors.New("bad reactor")
	}, "bad reactor"},
	{"panics", func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		panic("bad reactor panics")
	}, "panic: bad reactor panics"},
	{"args JSON cannot encode", func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		return []eventstore.PlannedEffect{{Kind: "note", Key: "bad:" + rec.ID.String(), Args: math.NaN()}}, nil
	}, "unsupported value: NaN"},
	{"a NUL byte in the key", func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		return []eventstore.PlannedEffect{{Kind: "note", Key: "bad\x00" + rec.ID.String(), Args: "x"}}, nil
	}, "control character"},
	{"a key longer than MaxEffectKeyBytes", func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		return []eventstore.PlannedEffect{{Kind: "note", Key: strings.Repeat("k", eventstore.MaxEffectKeyBytes+1), Args: "x"}}, nil
	}, "too long"},
	{"a key the database refuses", func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
		return []eventstore.PlannedEffect{{Kind: "note", Key: "refused:" + rec.ID.String(), Args: "x"}}, nil
	}, "test refuses effect key"},
}

// A reactor that fails on a record holds back only its own reaction: the
// other reactor of the same job reacts and its effect runs, and the job is
// retried for the failing reactor alone, whatever way it fails.
func TestReactorFailureHoldsBackOnlyItself(t *testing.T) {
	t.Parallel()
	for _, tc := range misbehaviours {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			refuseKeys(t, b)
			runs := countEffects(t, b, "note")
			notes := eventstore.NewQuery(eventstore.Types("Note"))
			for name, plan := range map[string]func(eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error){
				"good": func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
					return []eventstore.PlannedEffect{{Kind: "note", Key: "good:" + rec.ID.String(), Args: "ok"}}, nil
				},
				"bad": tc.plan,
			} {
				if err := reactors.AddReactor(b.reg, reactors.Reactor[tickets.Event]{Name: name, Codec: noteCodec{b.codec}, Subscribe: notes, React: plan}); err != nil {
					t.Fatal(err)
				}
			}
			env := testriver.Start(t, b.pool, b.reg, nil)
			dispatchNote(t, b, env.Store, "n1")
			// The job fails (for "bad") and is retried; meanwhile "good"
			// has reacted once and its effect ran once.
			testriver.WaitFor(t, time.Minute, "the job to fail twice", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions' AND coalesce(array_length(errors, 1), 0) >= 2`) == 1, nil
			})
			testriver.WaitFor(t, time.Minute, "the good effect", func() (bool, error) {
				return len(runs.snapshot()) > 0, nil
			})
			var state, last string
			if err := b.pool.QueryRow(b.ctx, `SELECT state::text, errors[array_length(errors, 1)]->>'error' FROM river_job WHERE kind = 'factos.reactions'`).Scan(&state, &last); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(last, "reactor bad failed on record 1") || !strings.Contains(last, tc.want) || strings.Contains(last, "reactor good") {
				t.Errorf("job %s, last error %q: want only reactor bad's failure, with %q", state, last, tc.want)
			}
			if n := b.count(t, `SELECT count(*) FROM factos_reactions WHERE reactor = 'good'`); n != 1 {
				t.Errorf("%d ledger rows of reactor good, want 1", n)
			}
			if n := b.count(t, `SELECT count(*) FROM factos_reactions WHERE reactor = 'bad'`); n != 0 {
				t.Errorf("%d ledger rows of reactor bad, want 0", n)
			}
			for k, n := range runs.snapshot() {
				if !strings.HasPrefix(k, "good:") || n != 1 {
					t.Errorf("effect %q ran %d times; want only good's effect, once", k, n)
				}
			}
		})
	}
}

// Reactions claim waiting jobs beside their own; a job whose records make
// a reactor fail (in Go, or in the database) fails alone: the jobs that
// claimed it, and the other jobs it was claimed with, complete on their
// first attempt, and every healthy record is reacted to once.
func TestPoisonedJobsDoNotFailTheJobsClaimedWithThem(t *testing.T) {
	t.Parallel()
	const records = 3000
	b := setup(t)
	promReg := prometheus.NewRegistry()
	metrics, err := reactors.NewMetrics(promReg, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	b.reg = reactors.NewRegistry(&reactors.Config{Metrics: metrics})
	refuseKeys(t, b)
	runs := countEffects(t, b, "note")
	err = reactors.AddReactor(b.reg, reactors.Reactor[tickets.Event]{
		Name: "r", Codec: noteCodec{b.codec}, Subscribe: eventstore.NewQuery(eventstore.Types("Note")),
		React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
			key := fmt.Sprint("k:", rec.Position)
			var args any = "ok"
			switch rec.Stream[:1] {
			case "g": // poisoned in Go
				args = math.Inf(1)
			case "d": // poisoned in the database
				key = fmt.Sprint("refused:", rec.Position)
			}
			return []eventstore.PlannedEffect{{Kind: "note", Key: key, Args: args}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{NoStart: true, Workers: 10})
	poisoned := 0
	for i := range records {
		stream := fmt.Sprint("n", i)
		switch i % 100 {
		case 17:
			stream = fmt.Sprint("g", i)
		case 71:
			stream = fmt.Sprint("d", i)
		}
		if stream[0] != 'n' {
			poisoned++
		}
		dispatchNote(t, b, env.Store, stream)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	t.Cleanup(cancel)
	if err := env.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop(context.Background()) })
	testriver.WaitFor(t, 2*time.Minute, "every healthy record reacted to", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM factos_reactions`) == records-poisoned, nil
	})
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions' AND state = 'completed' AND attempt = 1 AND errors IS NULL`); n != records-poisoned {
		t.Errorf("%d reaction jobs completed at their first attempt, want %d (every healthy one)", n, records-poisoned)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions' AND state <> 'completed' AND errors IS NOT NULL`); n != poisoned {
		t.Errorf("%d reaction jobs failing, want %d (the poisoned ones)", n, poisoned)
	}
	if n := claimedTotal(t, promReg); n == 0 {
		t.Error("no reaction claimed a job: the test proves nothing about claims")
	} else {
		t.Logf("%d records, %d poisoned; %.0f jobs claimed", records, poisoned, n)
	}
	testriver.WaitFor(t, time.Minute, "every healthy effect", func() (bool, error) {
		return len(runs.snapshot()) == records-poisoned, nil
	})
	for k, n := range runs.snapshot() {
		if n != 1 {
			t.Errorf("effect %s ran %d times", k, n)
		}
	}
}
