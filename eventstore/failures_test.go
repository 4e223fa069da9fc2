package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// brokenCodec fails to encode.
type brokenCodec struct {
	eventstore.Codec[tickets.Event]
}

var errEncode = errors.New("cannot encode")

func (brokenCodec) Encode(tickets.Event) (eventstore.EventData, error) {
	return eventstore.EventData{}, errEncode
}

type unregistered struct{ tickets.TicketSold }

func TestFailuresAreTypedAndWriteNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.schedule(t, "c1", 5)
	buy := tickets.BuyTicketHandler(b.codec)
	cmd := tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}
	errHook := errors.New("hook failed")

	cases := []struct {
		name  string
		run   func(ctx context.Context) error
		check func(t *testing.T, err error)
	}{
		{
			name: "domain rejection",
			run: func(ctx context.Context) error {
				_, err := eventstore.Dispatch(ctx, b.store, buy, tickets.BuyTicket{ConcertID: "nope", BuyerID: "ada"}, nil)
				return err
			},
			check: func(t *testing.T, err error) {
				var rej *eventstore.RejectedError
				if !errors.As(err, &rej) || !errors.Is(rej.Err, tickets.ErrConcertNotFound) {
					t.Fatalf("err = %v, want rejection with ErrConcertNotFound", err)
				}
			},
		},
		{
			name: "encode failure",
			run: func(ctx context.Context) error {
				h := buy
				h.Codec = brokenCodec{b.codec}
				_, err := eventstore.Dispatch(ctx, b.store, h, cmd, nil)
				return err
			},
			check: func(t *testing.T, err error) {
				var enc *eventstore.EncodeError
				if !errors.As(err, &enc) || !errors.Is(err, errEncode) || !errors.Is(err, eventstore.ErrEncode) {
					t.Fatalf("err = %v, want *EncodeError wrapping the codec's error", err)
				}
			},
		},
		{
			name: "unregistered event type",
			run: func(ctx context.Context) error {
				h := buy
				h.Decider.Decide = func(tickets.Sale, tickets.BuyTicket) ([]tickets.Event, error) {
					return []tickets.Event{unregistered{}}, nil
				}
				_, err := eventstore.Dispatch(ctx, b.store, h, cmd, nil)
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, eventstore.ErrEncode) || !errors.Is(err, eventstore.ErrUnknownEventType) {
					t.Fatalf("err = %v, want encode error of an unknown type", err)
				}
			},
		},
		{
			name: "hook failure",
			run: func(ctx context.Context) error {
				_, err := eventstore.Dispatch(ctx, b.store, buy, cmd, &eventstore.DispatchOpts{Hooks: []eventstore.Hook{
					eventstore.HookFunc(func(context.Context, pgx.Tx, []eventstore.RawRecord) error { return errHook }),
				}})
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errHook) || !errors.Is(err, eventstore.ErrStore) {
					t.Fatalf("err = %v, want store error wrapping the hook's", err)
				}
			},
		},
		{
			name: "context cancelled before dispatch",
			run: func(ctx context.Context) error {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := eventstore.Dispatch(ctx, b.store, buy, cmd, nil)
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) || !errors.Is(err, eventstore.ErrStore) {
					t.Fatalf("err = %v, want store error wrapping context.Canceled", err)
				}
			},
		},
		{
			name: "context cancelled after the append",
			run: func(ctx context.Context) error {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				_, err := eventstore.Dispatch(ctx, b.store, buy, cmd, &eventstore.DispatchOpts{Hooks: []eventstore.Hook{
					eventstore.HookFunc(func(ctx context.Context, tx pgx.Tx, _ []eventstore.RawRecord) error {
						cancel()
						_, err := tx.Exec(ctx, "SELECT 1")
						return err
					}),
				}})
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "connection dropped after the append",
			run: func(ctx context.Context) error {
				_, err := eventstore.Dispatch(ctx, b.store, buy, cmd, &eventstore.DispatchOpts{Hooks: []eventstore.Hook{
					eventstore.HookFunc(func(ctx context.Context, tx pgx.Tx, _ []eventstore.RawRecord) error {
						var pid int
						if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
							return err
						}
						// Kill this transaction's backend from another session.
						if _, err := b.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
							return err
						}
						return nil
					}),
				}})
				return err
			},
			check: func(t *testing.T, err error) {
				var se *eventstore.StoreError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *StoreError", err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := b.counts(t)
			tc.check(t, tc.run(b.ctx))
			if after := b.counts(t); after != before {
				t.Errorf("rows changed: %+v -> %+v", before, after)
			}
		})
	}

	// The pool recovers from the dropped connection.
	if _, err := eventstore.Dispatch(b.ctx, b.store, buy, cmd, nil); err != nil {
		t.Fatalf("dispatch after failures: %v", err)
	}
}

func TestDecodeFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.schedule(t, "c1", 5)
	// A TicketSold whose bytes are not JSON lands in the concert's context.
	_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "import", Events: []eventstore.EventData{
		{Type: tickets.TypeTicketSold, Tags: []string{tickets.ConcertTag("c1")}, Data: []byte("not json")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := b.counts(t)
	_, err = eventstore.Dispatch(b.ctx, b.store, tickets.BuyTicketHandler(b.codec), tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, nil)
	var dec *eventstore.DecodeError
	if !errors.As(err, &dec) || dec.Type != tickets.TypeTicketSold || dec.Position == 0 || !errors.Is(err, eventstore.ErrDecode) {
		t.Fatalf("err = %v, want *DecodeError naming the event", err)
	}

	// An event type the codec does not know, in a context it reads.
	_, err = b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "import2", Events: []eventstore.EventData{
		{Type: "Mystery", Tags: []string{"username:ada"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := tickets.RegisterUserHandler(b.codec)
	h.Query = func(c tickets.RegisterUser) eventstore.Query {
		return eventstore.NewQuery(eventstore.Tags(tickets.UsernameTag(c.Username)))
	}
	_, err = eventstore.Dispatch(b.ctx, b.store, h, tickets.RegisterUser{UserID: "1", Username: "ada"}, nil)
	if !errors.Is(err, eventstore.ErrDecode) || !errors.Is(err, eventstore.ErrUnknownEventType) {
		t.Fatalf("err = %v, want decode error of an unknown type", err)
	}
	if after := b.counts(t); after.events != before.events+1 {
		t.Errorf("rows: %+v -> %+v", before, after)
	}
}

func TestCommandIDMakesDispatchIdempotent(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t, &eventstore.Config{LockStrategy: strategy, MaxAttempts: 100})
			b.schedule(t, "c1", 100)
			buy := tickets.BuyTicketHandler(b.codec)

			// Many concurrent deliveries of the same command: one append.
			const copies = 16
			results := make([]*eventstore.Result[tickets.Event], copies)
			errs := race(copies, copies, func(i int) error {
				var err error
				results[i], err = eventstore.Dispatch(b.ctx, b.store, buy, tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"},
					&eventstore.DispatchOpts{CommandID: "cmd-1"})
				return err
			})
			firsts := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("copy %d: %v", i, err)
				}
				if !results[i].Duplicate {
					firsts++
				}
				if len(results[i].Records) != 1 || results[i].Records[0].Position != results[0].Records[0].Position {
					t.Fatalf("copy %d answered %+v, copy 0 %+v", i, results[i].Records, results[0].Records)
				}
				if sold := results[i].Records[0].Event.(tickets.TicketSold); sold.Seat != 1 {
					t.Fatalf("copy %d: seat %d", i, sold.Seat)
				}
			}
			if firsts != 1 {
				t.Errorf("%d copies appended, want 1", firsts)
			}
			if c := b.counts(t); c.events != 2 || c.commands != 1 {
				t.Errorf("counts %+v, want 2 events and 1 command", c)
			}

			// A decision with no events is remembered too.
			noop := buy
			noop.Decider.Decide = func(tickets.Sale, tickets.BuyTicket) ([]tickets.Event, error) { return nil, nil }
			for i := range 2 {
				res, err := eventstore.Dispatch(b.ctx, b.store, noop, tickets.BuyTicket{ConcertID: "c1", BuyerID: "bob"},
					&eventstore.DispatchOpts{CommandID: "cmd-noop"})
				if err != nil || len(res.Records) != 0 || res.Duplicate != (i == 1) {
					t.Fatalf("noop %d: %+v %v", i, res, err)
				}
			}

			// The same id sent with another command (another stream, whose
			// codec may not decode the first command's records) is refused,
			// not answered with the first command's result.
			before := b.counts(t)
			_, err := eventstore.Dispatch(b.ctx, b.store, tickets.RegisterUserHandler(b.codec), tickets.RegisterUser{UserID: "u1", Username: "ada"},
				&eventstore.DispatchOpts{CommandID: "cmd-1"})
			var reused *eventstore.CommandIDReusedError
			if !errors.As(err, &reused) || reused.CommandID != "cmd-1" || !errors.Is(err, eventstore.ErrInvalidInput) {
				t.Fatalf("command id reused by another command: err = %v, want a *CommandIDReusedError", err)
			}
			if after := b.counts(t); after != before {
				t.Errorf("refused dispatch wrote rows: %+v -> %+v", before, after)
			}
		})
	}
}

func TestEventLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.schedule(t, "c1", 1)
	for _, sql := range []string{
		"UPDATE factos_events SET type = 'X'",
		"DELETE FROM factos_events",
		"TRUNCATE factos_events",
		"UPDATE factos_event_tags SET tag = 'x'",
		"DELETE FROM factos_event_tags",
	} {
		if _, err := b.pool.Exec(b.ctx, sql); err == nil {
			t.Errorf("%s succeeded", sql)
		}
	}
	if c := b.counts(t); c.events != 1 || c.tags != 1 {
		t.Errorf("counts %+v", c)
	}
}

// Dispatch by stream revision and AppendRequest.ExpectedRevision.
func TestStreamRevisions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	sched := tickets.ScheduleConcertHandler(b.codec)
	res, err := eventstore.Dispatch(b.ctx, b.store, sched, tickets.ScheduleConcert{ConcertID: "c1", Capacity: 3}, nil)
	if err != nil || res.Revision != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = eventstore.Dispatch(b.ctx, b.store, sched, tickets.ScheduleConcert{ConcertID: "c1", Capacity: 3}, nil)
	if !errors.Is(err, tickets.ErrConcertExists) {
		t.Fatalf("err = %v, want ErrConcertExists", err)
	}
	for _, tc := range []struct {
		expected int64
		ok       bool
	}{{0, false}, {2, false}, {1, true}, {1, false}, {2, true}} {
		_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: tickets.ConcertStream("c1"), ExpectedRevision: eventstore.Revision(tc.expected),
			Events: []eventstore.EventData{{Type: "Note"}}})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, eventstore.ErrConflict)) {
			t.Errorf("expected revision %d: err = %v, want ok=%v", tc.expected, err, tc.ok)
		}
	}
	records, head, err := b.store.ReadStream(b.ctx, tickets.ConcertStream("c1"), 1)
	if err != nil || head != 3 || len(records) != 2 || records[0].Revision != 2 {
		t.Fatalf("ReadStream after 1: %d records, head %d, %v", len(records), head, err)
	}
}

func TestProjectFoldsAView(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.schedule(t, "c1", 10)
	buy := tickets.BuyTicketHandler(b.codec)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := eventstore.Dispatch(b.ctx, b.store, buy, tickets.BuyTicket{ConcertID: "c1", BuyerID: fmt.Sprint(i)}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	view := eventstore.View[tickets.Event, []string]{Evolve: func(buyers []string, r eventstore.Record[tickets.Event]) []string {
		if s, ok := r.Event.(tickets.TicketSold); ok {
			return append(buyers, s.BuyerID)
		}
		return buyers
	}}
	buyers, after, err := eventstore.Project(b.ctx, b.store, b.codec, eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)), view)
	if err != nil || len(buyers) != 4 || after == nil || *after != 5 {
		t.Fatalf("buyers %v after %v err %v", buyers, after, err)
	}
}
