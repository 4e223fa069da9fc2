package reactors_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/outbox"
	"github.com/factos-go/factos/reactors"
)

const waitLong = 30 * time.Second

type bundle struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	codec *eventstore.JSONCodec[tickets.Event]
	reg   *reactors.Registry
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := testdb.New(t)
	ctx := context.Background()
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: ctx, pool: pool, codec: tickets.NewCodec(), reg: reactors.NewRegistry(nil)}
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(b.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *bundle) sell(t *testing.T, store *eventstore.Store, concert string, buyers int) {
	t.Helper()
	_, err := eventstore.Dispatch(b.ctx, store, tickets.ScheduleConcertHandler(b.codec), tickets.ScheduleConcert{ConcertID: concert, Capacity: buyers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buyers {
		if _, err := eventstore.Dispatch(b.ctx, store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: concert, BuyerID: fmt.Sprint(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// The whole path: dispatch, reaction job, reaction, effect job, effect.
func TestDispatchReactsAndRunsEffects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, nil)
	b.sell(t, env.Store, "c1", 3)

	testriver.WaitFor(t, waitLong, "3 announcements", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM ticket_announcements`) == 3, nil
	})
	testriver.WaitFor(t, waitLong, "all jobs completed", func() (bool, error) {
		r := testriver.JobCounts(t, b.pool, outbox.Kind)
		e := testriver.JobCounts(t, b.pool, reactors.EffectKindPrefix)
		return r["completed"] == 3 && len(r) == 1 && e["completed"] == 3 && len(e) == 1, nil
	})
	if n := b.count(t, `SELECT count(*) FROM factos_reactions WHERE reactor = $1`, tickets.ReactorAnnounceSales); n != 3 {
		t.Errorf("%d reactions in the ledger, want 3", n)
	}
	if n := b.count(t, `SELECT count(*) FROM factos_effects`); n != 3 {
		t.Errorf("%d effects in the ledger, want 3", n)
	}
	// The reaction job is readable: the dispatch's stream, its records
	// (position and type) and the reactors concerned; one per dispatch.
	var args outbox.ReactionArgs
	if err := b.pool.QueryRow(b.ctx, `SELECT args FROM river_job WHERE kind = $1 ORDER BY id LIMIT 1`, outbox.Kind).Scan(&args); err != nil {
		t.Fatal(err)
	}
	if len(args.Events) != 1 || args.Events[0].Type != tickets.TypeTicketSold || args.Events[0].Position < 2 ||
		len(args.Reactors) != 1 || args.Reactors[0] != tickets.ReactorAnnounceSales {
		t.Fatalf("reaction args %+v", args)
	}
	var stream string
	if err := b.pool.QueryRow(b.ctx, `SELECT stream FROM factos_events WHERE position = $1`, args.Events[0].Position).Scan(&stream); err != nil || args.Stream != stream {
		t.Errorf("reaction job's stream %q, the record's %q (%v)", args.Stream, stream, err)
	}
}

func TestFailingEffectIsRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int64
	addFlaky(t, b, "flaky", 5, func(e reactors.Effect[string]) error {
		if calls.Add(1) <= 2 {
			return fmt.Errorf("transient failure %d", e.Attempt)
		}
		return nil
	})
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchNote(t, b, env.Store, "n1")

	var job *rivertype.JobRow
	testriver.WaitFor(t, waitLong, "the effect to complete", func() (bool, error) {
		job = effectJob(t, b, "flaky")
		return job != nil && job.State == rivertype.JobStateCompleted, nil
	})
	if job.Attempt != 3 || len(job.Errors) != 2 || job.Errors[0].Error != "transient failure 1" {
		t.Errorf("attempt %d with errors %+v, want 3 attempts and the 2 failures recorded", job.Attempt, job.Errors)
	}
}

func TestPoisonEffectGoesToTheDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addFlaky(t, b, "poison", 3, func(reactors.Effect[string]) error { return errors.New("always fails") })
	addFlaky(t, b, "refused", 3, func(reactors.Effect[string]) error { return reactors.Permanent(errors.New("card declined")) })
	env := testriver.Start(t, b.pool, b.reg, nil)
	dispatchNote(t, b, env.Store, "n1")

	testriver.WaitFor(t, waitLong, "the poison effect to be discarded", func() (bool, error) {
		job := effectJob(t, b, "poison")
		return job != nil && job.State == rivertype.JobStateDiscarded, nil
	})
	job := effectJob(t, b, "poison")
	if job.Attempt != 3 || len(job.Errors) != 3 || job.Errors[2].Error != "always fails" {
		t.Errorf("discarded after %d attempts with errors %+v, want 3 and 3", job.Attempt, job.Errors)
	}
	testriver.WaitFor(t, waitLong, "the refused effect to be cancelled", func() (bool, error) {
		job := effectJob(t, b, "refused")
		return job != nil && job.State == rivertype.JobStateCancelled, nil
	})
	if job := effectJob(t, b, "refused"); job.Attempt != 1 || len(job.Errors) != 1 {
		t.Errorf("permanent failure ran %d times, errors %+v; want once", job.Attempt, job.Errors)
	}
}

func TestNoJobsWithoutCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{NoStart: true})
	b.sell(t, env.Store, "c1", 1)
	jobs := b.count(t, `SELECT count(*) FROM river_job`)
	if jobs != 1 {
		t.Fatalf("%d jobs after one sale, want 1", jobs)
	}

	// Rejected: sold out.
	_, err := eventstore.Dispatch(b.ctx, env.Store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: "c1", BuyerID: "late"}, nil)
	if !errors.Is(err, tickets.ErrSoldOut) {
		t.Fatal(err)
	}
	// Rolled back after the outbox ran: a later hook fails.
	_, err = eventstore.Dispatch(b.ctx, env.Store, tickets.ScheduleConcertHandler(b.codec), tickets.ScheduleConcert{ConcertID: "c2", Capacity: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	errLater := errors.New("later hook fails")
	_, err = eventstore.Dispatch(b.ctx, env.Store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: "c2", BuyerID: "x"},
		&eventstore.DispatchOpts{Hooks: []eventstore.Hook{eventstore.HookFunc(func(ctx context.Context, tx pgx.Tx, _ []eventstore.RawRecord) error {
			// The outbox has inserted its job in this transaction by now.
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&n); err != nil || n != 2 {
				return fmt.Errorf("outbox job not visible in the transaction: %d %v", n, err)
			}
			return errLater
		})}})
	if !errors.Is(err, errLater) {
		t.Fatal(err)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job`); n != jobs {
		t.Errorf("%d jobs, want %d: a rejected or rolled-back dispatch left jobs", n, jobs)
	}
}

func TestFailedJobInsertFailsTheDispatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	// River's table refuses reaction jobs in this database.
	if _, err := b.pool.Exec(b.ctx, `ALTER TABLE river_job ADD CONSTRAINT no_reactions CHECK (kind <> 'factos.reactions')`); err != nil {
		t.Fatal(err)
	}
	ob, err := b.reg.Outbox(nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.New(b.pool, &eventstore.Config{BatchHooks: []eventstore.BatchHook{ob}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = eventstore.Dispatch(b.ctx, store, tickets.ScheduleConcertHandler(b.codec), tickets.ScheduleConcert{ConcertID: "c1", Capacity: 1}, nil)
	if err != nil {
		t.Fatal(err) // no subscriber for ConcertScheduled: no insert
	}
	_, err = eventstore.Dispatch(b.ctx, store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: "c1", BuyerID: "x"}, nil)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "no_reactions" || !errors.Is(err, eventstore.ErrStore) {
		t.Fatalf("err = %v, want the job insert's failure", err)
	}
	if n := b.count(t, `SELECT count(*) FROM factos_events WHERE type = 'TicketSold'`); n != 0 {
		t.Errorf("%d tickets stored although their jobs were not", n)
	}
}

// Hundreds of concurrent dispatches: exactly one reaction job per (record,
// reactor), exactly one effect job per effect key.
func TestConcurrentDispatchesEnqueueExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	// A second reactor on every event, with one effect per record.
	err := reactors.AddReactor(b.reg, reactors.Reactor[tickets.Event]{
		Name: "audit", Codec: b.codec, Subscribe: eventstore.AllEvents(),
		React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
			return []eventstore.PlannedEffect{{Kind: "audit", Key: "audit:" + rec.ID.String(), Args: rec.Type}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var audited atomic.Int64
	addEffect(t, b, "audit", func(reactors.Effect[string]) error { audited.Add(1); return nil })
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{Workers: 8})

	if _, err := eventstore.Dispatch(b.ctx, env.Store, tickets.ScheduleConcertHandler(b.codec), tickets.ScheduleConcert{ConcertID: "c1", Capacity: 150}, nil); err != nil {
		t.Fatal(err)
	}
	const buyers = 300
	sem := make(chan struct{}, 24)
	errs := make(chan error, buyers)
	for i := range buyers {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := eventstore.Dispatch(b.ctx, env.Store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: "c1", BuyerID: fmt.Sprint(i)}, nil)
			if errors.Is(err, tickets.ErrSoldOut) {
				err = nil
			}
			errs <- err
		}()
	}
	for range buyers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	testriver.WaitFor(t, 2*waitLong, "every job to finish", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0 &&
			b.count(t, `SELECT count(*) FROM ticket_announcements`) == 150, nil
	})
	events := b.count(t, `SELECT count(*) FROM factos_events`)
	for _, tc := range []struct {
		what string
		sql  string
		want int
	}{
		// One reaction job per dispatch (each appends one event here), for
		// both reactors: the audit reactor wants every event.
		{"reaction jobs", `SELECT count(*) FROM river_job WHERE kind = 'factos.reactions'`, events},
		{"records in reaction jobs", `SELECT count(*) FROM river_job, jsonb_array_elements(args->'events') WHERE kind = 'factos.reactions'`, events},
		{"distinct records in reaction jobs", `SELECT count(DISTINCT e->>'position') FROM river_job, jsonb_array_elements(args->'events') e WHERE kind = 'factos.reactions'`, events},
		{"announce reactions", `SELECT count(*) FROM factos_reactions WHERE reactor = 'announce_sales'`, 150},
		{"audit reactions", `SELECT count(*) FROM factos_reactions WHERE reactor = 'audit'`, events},
		{"announce effect jobs", `SELECT count(*) FROM river_job WHERE kind = 'factos.effect.announce_ticket_sale'`, 150},
		{"distinct announce keys", `SELECT count(DISTINCT args->>'key') FROM river_job WHERE kind = 'factos.effect.announce_ticket_sale'`, 150},
		{"audit effect jobs", `SELECT count(*) FROM river_job WHERE kind = 'factos.effect.audit'`, events},
		{"distinct audit keys", `SELECT count(DISTINCT args->>'key') FROM river_job WHERE kind = 'factos.effect.audit'`, events},
	} {
		if got := b.count(t, tc.sql); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.what, got, tc.want)
		}
	}
	if int(audited.Load()) != events {
		t.Errorf("audit effect ran %d times for %d events", audited.Load(), events)
	}
}

func TestReplayDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := tickets.RegisterReactions(b.reg, b.codec, b.pool); err != nil {
		t.Fatal(err)
	}
	// History written before the reactor existed: no outbox.
	plain, err := eventstore.New(b.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.sell(t, plain, "old", 7)
	env := testriver.Start(t, b.pool, b.reg, &testriver.Opts{NoStart: true})
	b.sell(t, env.Store, "new", 2) // these have reaction jobs already

	// Resumable: one batch of 3, then the rest under the same name.
	res, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, BatchSize: 3, MaxBatches: 1, Name: "backfill"})
	if err != nil || res.Enqueued != 3 || res.Done {
		t.Fatalf("first batch: %+v %v", res, err)
	}
	res, err = b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, BatchSize: 3, Name: "backfill"})
	if err != nil || res.Enqueued != 4 || res.Skipped != 2 || !res.Done {
		t.Fatalf("rest: %+v %v; want 4 enqueued, the 2 with jobs skipped", res, err)
	}
	// Replayed jobs are tagged like a dispatch's, for River UI: their
	// records' streams and types.
	untagged := b.count(t, `SELECT count(*) FROM river_job j WHERE j.args->>'replay' = 'backfill'
		AND NOT (j.tags @> ARRAY[$1]::varchar[] AND EXISTS (SELECT 1 FROM jsonb_array_elements(j.args->'events') e
			JOIN factos_events ev ON ev.position = (e->>'position')::int8 WHERE ev.stream = ANY(j.tags)))`, tickets.TypeTicketSold)
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE args->>'replay' = 'backfill'`); n == 0 || untagged > 0 {
		t.Errorf("%d of %d replayed reaction jobs lack their records' stream and type tags", untagged, n)
	}
	// Again from the start: everything is waiting already.
	res, err = b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales})
	if err != nil || res.Enqueued != 0 || res.Skipped != 9 {
		t.Fatalf("second replay: %+v %v", res, err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	if err := env.Run(ctx); err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, waitLong, "9 announcements", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state <> 'completed'`) == 0 && b.count(t, `SELECT count(*) FROM ticket_announcements`) == 9, nil
	})
	if err := env.Client.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	// After the jobs are gone (as River's cleaner would remove them), the
	// ledger still knows.
	if _, err := b.pool.Exec(b.ctx, `DELETE FROM river_job`); err != nil {
		t.Fatal(err)
	}
	res, err = b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales})
	if err != nil || res.Enqueued != 0 || res.Skipped != 9 {
		t.Fatalf("replay after cleanup: %+v %v", res, err)
	}
	// A filter restricts the replay.
	filter := eventstore.NewQuery(eventstore.Tags(tickets.ConcertTag("old")))
	res, err = b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, Filter: &filter})
	if err != nil || res.Skipped != 7 {
		t.Fatalf("filtered replay: %+v %v", res, err)
	}
	if n := b.count(t, `SELECT count(*) FROM ticket_announcements`); n != 9 {
		t.Errorf("%d announcements, want 9", n)
	}
	// A From past the head, or negative, is refused and stores nothing: a
	// named replay's checkpoint there would skip the events written up to
	// it when the replay is run again.
	head := eventstore.Position(b.count(t, `SELECT max(position) FROM factos_events`))
	for _, from := range []eventstore.Position{head + 1, head + 100_000, -1} {
		_, err = b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, From: from, Name: "far"})
		if !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("replay from %d (head %d): %v, want ErrInvalidInput", from, head, err)
		}
	}
	if n := b.count(t, `SELECT count(*) FROM factos_replays WHERE name = 'far'`); n != 0 {
		t.Errorf("%d checkpoints stored by refused replays", n)
	}
	if _, err := b.reg.Replay(b.ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, From: head}); err != nil {
		t.Errorf("replay from the head: %v", err)
	}
}

// helpers

func addEffect(t *testing.T, b *bundle, kind string, fn func(reactors.Effect[string]) error) {
	t.Helper()
	err := reactors.AddEffect(b.reg, reactors.EffectHandler[string]{Kind: kind, MaxAttempts: 5,
		Handle: func(_ context.Context, e reactors.Effect[string]) error { return fn(e) }})
	if err != nil {
		t.Fatal(err)
	}
}

// addFlaky registers a reactor that plans one effect of kind per Note and
// the effect's handler.
func addFlaky(t *testing.T, b *bundle, kind string, maxAttempts int, fn func(reactors.Effect[string]) error) {
	t.Helper()
	err := reactors.AddReactor(b.reg, reactors.Reactor[tickets.Event]{
		Name: "react-" + kind, Codec: noteCodec{b.codec}, Subscribe: eventstore.NewQuery(eventstore.Types("Note")),
		React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
			return []eventstore.PlannedEffect{{Kind: kind, Key: kind + ":" + rec.ID.String(), Args: "note"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = reactors.AddEffect(b.reg, reactors.EffectHandler[string]{Kind: kind, MaxAttempts: maxAttempts,
		Handle: func(_ context.Context, e reactors.Effect[string]) error { return fn(e) }})
	if err != nil {
		t.Fatal(err)
	}
}

// noteCodec decodes Note events (which the ticket codec does not know) as
// nil events.
type noteCodec struct {
	eventstore.Codec[tickets.Event]
}

func (c noteCodec) Decode(rec eventstore.RawRecord) (tickets.Event, error) {
	if rec.Type == "Note" {
		return nil, nil
	}
	return c.Codec.Decode(rec)
}

func dispatchNote(t *testing.T, b *bundle, store *eventstore.Store, stream string) {
	t.Helper()
	if _, err := store.Append(b.ctx, eventstore.AppendRequest{Stream: stream, Events: []eventstore.EventData{{Type: "Note"}}}); err != nil {
		t.Fatal(err)
	}
}

func effectJob(t *testing.T, b *bundle, kind string) *rivertype.JobRow {
	t.Helper()
	var job rivertype.JobRow
	var state string
	var errs []rivertype.AttemptError
	err := b.pool.QueryRow(b.ctx, `SELECT id, state::text, attempt, coalesce(errors, '{}') FROM river_job WHERE kind = $1`, reactors.EffectKindPrefix+kind).
		Scan(&job.ID, &state, &job.Attempt, &errs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	job.State, job.Errors = rivertype.JobState(state), errs
	return &job
}
