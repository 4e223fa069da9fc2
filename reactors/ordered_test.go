package reactors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// step is the event of the ordering tests: fact n of an entity.
type step struct {
	Entity string `json:"entity"`
	N      int    `json:"n"`
}

// stepCodec decodes Step records.
type stepCodec struct{}

func (stepCodec) Encode(s step) (eventstore.EventData, error) {
	data, err := json.Marshal(s)
	return eventstore.EventData{Type: "Step", Tags: []string{"entity:" + s.Entity}, Data: data}, err
}

func (stepCodec) Decode(rec eventstore.RawRecord) (step, error) {
	var s step
	err := json.Unmarshal(rec.Data, &s)
	return s, err
}

// ran is one effect that ran to completion.
type ran struct {
	key      string
	entity   string
	n        int
	position eventstore.Position
	part     int // index in the plan of its record
	start    int64
}

// effectLog records the ordered effects that ran, checking while they run
// that no two of one entity run at once.
type effectLog struct {
	mu       sync.Mutex
	ran      []ran
	running  map[string]int
	overlaps []string
	clock    atomic.Int64
}

func newEffectLog() *effectLog { return &effectLog{running: map[string]int{}} }

type stepEffect struct {
	Entity string `json:"entity"`
	N      int    `json:"n"`
	Part   int    `json:"part"`
}

// handle runs an ordered effect: fail, if it says so, or record it.
func (l *effectLog) handle(e reactors.Effect[stepEffect], fail func(stepEffect) error) error {
	l.mu.Lock()
	l.running[e.OrderingKey]++
	if l.running[e.OrderingKey] > 1 {
		l.overlaps = append(l.overlaps, e.Key)
	}
	start := l.clock.Add(1)
	l.mu.Unlock()
	// Let others run meanwhile, if the sequencer wrongly allowed it.
	time.Sleep(time.Duration(start%3) * time.Millisecond)
	var err error
	if fail != nil {
		err = fail(e.Args)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[e.OrderingKey]--
	if err == nil {
		l.ran = append(l.ran, ran{key: e.Key, entity: e.Args.Entity, n: e.Args.N, position: e.Position, part: e.Args.Part, start: start})
	}
	return err
}

func (l *effectLog) byEntity() map[string][]ran {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]ran{}
	for _, r := range l.ran {
		out[r.entity] = append(out[r.entity], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b ran) int { return int(a.start - b.start) })
	}
	return out
}

func (l *effectLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ran)
}

// orderedSetup registers a reactor that plans, for each step, two ordered
// effects of kind (parts 0 and 1, keyed by the entity) and one unordered
// effect, and the handlers; fail decides which ordered effects fail.
func orderedSetup(t *testing.T, b *bundle, kind string, onFailure reactors.OnFailure, maxAttempts int, log *effectLog,
	fail func(stepEffect) error, unordered *atomic.Int64) {
	t.Helper()
	err := reactors.AddReactor(b.reg, reactors.Reactor[step]{
		Name: "steps", Codec: stepCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("Step")),
		React: func(rec eventstore.Record[step]) ([]eventstore.PlannedEffect, error) {
			s := rec.Event
			id := rec.ID.String()
			return []eventstore.PlannedEffect{
				{Kind: kind, Key: "a:" + id, OrderingKey: "entity:" + s.Entity, Args: stepEffect{s.Entity, s.N, 0}},
				{Kind: "unordered", Key: "u:" + id, Args: stepEffect{s.Entity, s.N, 0}},
				{Kind: kind, Key: "b:" + id, OrderingKey: "entity:" + s.Entity, Args: stepEffect{s.Entity, s.N, 1}},
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = reactors.AddEffect(b.reg, reactors.EffectHandler[stepEffect]{Kind: kind, OnFailure: onFailure, MaxAttempts: maxAttempts,
		Handle: func(_ context.Context, e reactors.Effect[stepEffect]) error { return log.handle(e, fail) }})
	if err != nil {
		t.Fatal(err)
	}
	err = reactors.AddEffect(b.reg, reactors.EffectHandler[stepEffect]{Kind: "unordered",
		Handle: func(context.Context, reactors.Effect[stepEffect]) error { unordered.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
}

// dispatchSteps appends facts steps of every entity from workers
// goroutines, each fact in a dispatch of its own, round by round: all
// entities' fact n at once, so that an entity's facts take increasing
// positions, interleaved with the others'.
func dispatchSteps(t *testing.T, b *bundle, store *eventstore.Store, entities []string, facts, workers int) {
	t.Helper()
	for n := range facts {
		next := make(chan string)
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for e := range next {
					data, _ := json.Marshal(step{Entity: e, N: n})
					_, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: "entity-" + e,
						Events: []eventstore.EventData{{Type: "Step", Tags: []string{"entity:" + e}, Data: data}}})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for _, e := range entities {
			next <- e
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// checkOrder checks that every entity's ordered effects ran in the order
// of their records' positions, part 0 before part 1, each exactly once,
// none missing (want per entity, or all facts when nil).
func checkOrder(t *testing.T, log *effectLog, entities []string, want func(entity string) []int) {
	t.Helper()
	l := log.byEntity()
	if len(log.overlaps) > 0 {
		t.Errorf("%d ordered effects ran while another of their key ran, e.g. %v", len(log.overlaps), log.overlaps[:min(3, len(log.overlaps))])
	}
	for _, e := range entities {
		rs := l[e]
		var got []int
		seen := map[string]bool{}
		for i, r := range rs {
			if seen[r.key] {
				t.Errorf("entity %s: effect %s ran twice", e, r.key)
			}
			seen[r.key] = true
			if i > 0 {
				p := rs[i-1]
				if r.position < p.position || r.position == p.position && r.part <= p.part {
					t.Errorf("entity %s: effect (position %d, part %d) ran after (position %d, part %d)", e, r.position, r.part, p.position, p.part)
				}
			}
			if r.part == 0 {
				got = append(got, r.n)
			}
		}
		if w := want(e); !slices.Equal(got, w) {
			t.Errorf("entity %s: facts whose effects ran %v, want %v", e, got, w)
		}
	}
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// 200 entities × 20 facts, dispatched by 16 goroutines, each fact planning
// two ordered effects (keyed by its entity) and one unordered: every
// entity's effects run one at a time, in the order of their positions and
// of the plan, each exactly once; the unordered ones all run. Reactions
// fail now and then on their first attempt, before or after writing (so
// they are retried, out of order with the others): none plans an effect
// twice or loses its place. A replay afterwards plans nothing.
func TestOrderedEffectsRunInPositionOrderPerKey(t *testing.T) {
	t.Parallel()
	const entityCount, facts, dispatchers = 200, 20, 16
	b := setup(t)
	log := newEffectLog()
	var unordered atomic.Int64
	orderedSetup(t, b, "ordered", reactors.HaltSequence, 0, log, nil, &unordered)
	var faulted sync.Map
	reactors.SetFault(b.reg, func(step string, position int64) error {
		if (step == "reacted" && position%7 == 0) || (step == "committed" && position%11 == 0) {
			if _, again := faulted.LoadOrStore(fmt.Sprint(step, position), true); !again {
				return fmt.Errorf("injected fault at %s of %d", step, position)
			}
		}
		return nil
	})
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{Workers: 16})
	entities := make([]string, entityCount)
	for i := range entities {
		entities[i] = fmt.Sprintf("e%03d", i)
	}
	dispatchSteps(t, b, env.Store, entities, facts, dispatchers)

	total := entityCount * facts
	testriver.WaitFor(t, 5*time.Minute, "every ordered effect to run", func() (bool, error) {
		return log.count() >= 2*total && unordered.Load() >= int64(total), nil
	})
	checkOrder(t, log, entities, func(string) []int { return upTo(facts) })
	if n := log.count(); n != 2*total {
		t.Errorf("%d ordered effects ran, want %d", n, 2*total)
	}
	if n := unordered.Load(); n != int64(total) {
		t.Errorf("%d unordered effects ran, want %d", n, total)
	}
	testriver.WaitFor(t, waitLong, "every sequence row done", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM factos_effect_sequences WHERE state = 'done'`) == 2*total, nil
	})
	// The jobs of one key are found by its tag, and carry it in metadata.
	tag := reactors.SequenceTag("entity:e007")
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE $1 = ANY(tags) AND metadata->>'ordering_key' = 'entity:e007'`, tag); n != 2*facts {
		t.Errorf("%d jobs tagged %s, want %d", n, tag, 2*facts)
	}
	res, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: "steps"})
	if err != nil || res.Enqueued != 0 {
		t.Fatalf("replay: %+v %v", res, err)
	}
}

// A poisoned effect halts its own key only, by default: the key's later
// effects wait (pending jobs, waiting rows) while every other key
// completes. Retried from River UI, it runs and the key goes on.
func TestPoisonedOrderedEffectHaltsItsKeyOnly(t *testing.T) {
	t.Parallel()
	const facts = 8
	b := setup(t)
	log := newEffectLog()
	var poisoned atomic.Bool
	poisoned.Store(true)
	var unordered atomic.Int64
	orderedSetup(t, b, "halting", reactors.HaltSequence, 0, log, func(e stepEffect) error {
		if e.Entity == "poison" && e.N == 3 && e.Part == 0 && poisoned.Load() {
			return reactors.Permanent(errors.New("poison"))
		}
		return nil
	}, &unordered)
	env := testriver.Start(t, b.pool, b.reg, nil)
	entities := []string{"ok1", "poison", "ok2", "ok3"}
	dispatchSteps(t, b, env.Store, entities, facts, 4)

	testriver.WaitFor(t, waitLong, "the other keys' effects and the poisoned key's first three facts", func() (bool, error) {
		return log.count() == 3*2*facts+3*2 && unordered.Load() == int64(4*facts), nil
	})
	var jobID int64
	testriver.WaitFor(t, waitLong, "the poisoned key to halt", func() (bool, error) {
		err := b.pool.QueryRow(b.ctx, `SELECT coalesce(max(job_id), 0) FROM factos_effect_sequences WHERE ordering_key = 'entity:poison' AND state = 'failed'`).Scan(&jobID)
		return jobID != 0, err
	})
	// Nothing else of the key ran: its later effects wait as pending jobs.
	if n := b.count(t, `SELECT count(*) FROM factos_effect_sequences s JOIN river_job j ON j.id = s.job_id
		WHERE s.ordering_key = 'entity:poison' AND s.state = 'waiting' AND j.state = 'pending'`); n != 2*facts-7 {
		t.Errorf("%d waiting effects of the halted key, want %d", n, 2*facts-7)
	}
	checkOrder(t, log, entities, func(e string) []int {
		if e == "poison" {
			return upTo(3)
		}
		return upTo(facts)
	})

	// The operator fixes the cause and retries the job (as River UI does).
	poisoned.Store(false)
	if _, err := env.Client.JobRetry(b.ctx, jobID); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "the halted key to finish", func() (bool, error) {
		return log.count() == 4*2*facts, nil
	})
	checkOrder(t, log, entities, func(string) []int { return upTo(facts) })
}

// With ContinueSequence, a key goes on past an effect discarded after its
// attempts, which is marked skipped.
func TestContinueSequencePassesDiscardedEffect(t *testing.T) {
	t.Parallel()
	const facts = 6
	b := setup(t)
	log := newEffectLog()
	var unordered atomic.Int64
	orderedSetup(t, b, "continuing", reactors.ContinueSequence, 2, log, func(e stepEffect) error {
		if e.Entity == "poison" && e.N == 2 && e.Part == 1 {
			return errors.New("always fails")
		}
		return nil
	}, &unordered)
	env := testriver.Start(t, b.pool, b.reg, nil)
	entities := []string{"ok", "poison"}
	dispatchSteps(t, b, env.Store, entities, facts, 2)

	testriver.WaitFor(t, waitLong, "every effect but the poisoned one", func() (bool, error) {
		return log.count() == 2*2*facts-1, nil
	})
	checkOrder(t, log, entities, func(string) []int { return upTo(facts) })
	testriver.WaitFor(t, waitLong, "the poisoned effect's row skipped", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM factos_effect_sequences s JOIN river_job j ON j.id = s.job_id
			WHERE s.state = 'skipped' AND j.state = 'discarded' AND j.attempt = 2`) == 1, nil
	})
}

// An ordering key is validated like the effect's other fields: a reaction
// planning a malformed one fails, with a typed error, and enqueues nothing.
func TestOrderingKeyIsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"none", "", true},
		{"plain", "buyer:42", true},
		{"longest", fmt.Sprintf("%0*d", eventstore.MaxOrderingKeyBytes, 1), true},
		{"too long", fmt.Sprintf("%0*d", eventstore.MaxOrderingKeyBytes+1, 1), false},
		{"control character", "buyer\n42", false},
		{"invalid UTF-8", "buyer\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := eventstore.PlannedEffect{Kind: "k", Key: "x", OrderingKey: tc.key}.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, eventstore.ErrInvalidInput)) {
				t.Fatalf("Validate() = %v, want ok %v or ErrInvalidInput", err, tc.ok)
			}
		})
	}
}

// riverTag is River's tag format (river's insert_opts.go).
var riverTag = regexp.MustCompile(`\A[\w][\w\-]+[\w]\z`)

// Sequence tags are River tags (River's client refuses others), one per
// key.
func TestSequenceTag(t *testing.T) {
	t.Parallel()
	long := fmt.Sprintf("%0300d", 7)
	tags := map[string]string{}
	for _, key := range []string{"buyer-42", "buyer:42", "buyer/42", "buyer_42", "ü", "-x-", long, long + "8", "a"} {
		tag := reactors.SequenceTag(key)
		if len(tag) > 255 || !riverTag.MatchString(tag) {
			t.Errorf("SequenceTag(%q) = %q, not a River tag", key, tag)
		}
		if other, dup := tags[tag]; dup {
			t.Errorf("keys %q and %q share the tag %q", other, key, tag)
		}
		tags[tag] = key
	}
	if got := reactors.SequenceTag("buyer-42"); got != "seq-buyer-42" {
		t.Errorf("a plain key's tag %q, want seq-buyer-42", got)
	}
}

// The sequencer's config is checked when the workers are added.
func TestSequencerConfigIsValidated(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	store, err := eventstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []reactors.SequencerConfig{
		{PollInterval: -1},
		{MinGap: -1},
		{PollInterval: time.Millisecond, MinGap: time.Second},
	} {
		reg := reactors.NewRegistry(&reactors.Config{Sequencer: cfg})
		if err := reg.AddWorkers(river.NewWorkers(), store); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
