package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// brokenCodec fails to encode.
type brokenCodec struct {
	eventstore.Codec[shop.Event]
}

var errEncode = errors.New("cannot encode")

func (brokenCodec) Encode(shop.Event) (eventstore.EventData, error) {
	return eventstore.EventData{}, errEncode
}

type unregistered struct{ shop.ItemSold }

func TestFailuresAreTypedAndWriteNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.list(t, "i1", 5)
	buy := b.shop.Buy
	cmd := shop.BuyItem{Item: "i1", Customer: "ada"}
	errHook := errors.New("hook failed")

	cases := []struct {
		name  string
		run   func(ctx context.Context) error
		check func(t *testing.T, err error)
	}{
		{
			name: "domain rejection",
			run: func(ctx context.Context) error {
				_, err := eventstore.Dispatch(ctx, b.store, buy, shop.BuyItem{Item: "nope", Customer: "ada"}, nil)
				return err
			},
			check: func(t *testing.T, err error) {
				var rej *eventstore.RejectedError
				if !errors.As(err, &rej) || !errors.Is(rej.Err, shop.ErrNotListed) {
					t.Fatalf("err = %v, want rejection with ErrNotListed", err)
				}
			},
		},
		{
			name: "encode failure",
			run: func(ctx context.Context) error {
				h := buy
				h.Codec = brokenCodec{b.shop.Codec}
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
				h.Decider.Decide = func(shop.Stock, shop.BuyItem) ([]shop.Event, error) {
					return []shop.Event{unregistered{}}, nil
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
	b.list(t, "i1", 5)
	// An ItemSold whose bytes are not JSON lands in the item's context. It
	// is at the current version, so the bytes, not the version, fail.
	_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "import", Events: []eventstore.EventData{
		{Type: shop.TypeItemSold, Version: 2, Tags: []string{shop.ItemTag("i1")}, Data: []byte("not json")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := b.counts(t)
	_, err = eventstore.Dispatch(b.ctx, b.store, b.shop.Buy, shop.BuyItem{Item: "i1", Customer: "ada"}, nil)
	var dec *eventstore.DecodeError
	var syntax *json.SyntaxError
	if !errors.As(err, &dec) || dec.Type != shop.TypeItemSold || dec.Position == 0 || !errors.Is(err, eventstore.ErrDecode) || !errors.As(err, &syntax) {
		t.Fatalf("err = %v, want *DecodeError naming the event and wrapping the JSON error", err)
	}

	// An event type the codec does not know, in a context it reads.
	_, err = b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "import2", Events: []eventstore.EventData{
		{Type: "Mystery", Tags: []string{"username:ada"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := b.shop.Claim
	h.Query = func(c shop.ClaimUsername) eventstore.Query {
		return eventstore.NewQuery(eventstore.Tags(shop.UsernameTag(c.Username)))
	}
	_, err = eventstore.Dispatch(b.ctx, b.store, h, shop.ClaimUsername{Customer: "1", Username: "ada"}, nil)
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
			b.list(t, "i1", 100)
			buy := b.shop.Buy

			// Many concurrent deliveries of the same command: one append.
			const copies = 16
			results := make([]*eventstore.Result[shop.Event], copies)
			errs := race(copies, copies, func(i int) error {
				var err error
				results[i], err = eventstore.Dispatch(b.ctx, b.store, buy, shop.BuyItem{Item: "i1", Customer: "ada"},
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
				if sold := results[i].Records[0].Event.(shop.ItemSold); sold.Edition != 1 {
					t.Fatalf("copy %d: edition %d", i, sold.Edition)
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
			noop.Decider.Decide = func(shop.Stock, shop.BuyItem) ([]shop.Event, error) { return nil, nil }
			for i := range 2 {
				res, err := eventstore.Dispatch(b.ctx, b.store, noop, shop.BuyItem{Item: "i1", Customer: "bob"},
					&eventstore.DispatchOpts{CommandID: "cmd-noop"})
				if err != nil || len(res.Records) != 0 || res.Duplicate != (i == 1) {
					t.Fatalf("noop %d: %+v %v", i, res, err)
				}
			}

			// The same id sent with another command (another stream, whose
			// codec may not decode the first command's records) is refused,
			// not answered with the first command's result.
			before := b.counts(t)
			_, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Claim, shop.ClaimUsername{Customer: "u1", Username: "ada"},
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
	b.list(t, "i1", 1)
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
	res, err := eventstore.Dispatch(b.ctx, b.store, b.shop.List, shop.ListItem{Item: "i1", Stock: 3}, nil)
	if err != nil || res.Revision != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = eventstore.Dispatch(b.ctx, b.store, b.shop.List, shop.ListItem{Item: "i1", Stock: 3}, nil)
	if !errors.Is(err, shop.ErrAlreadyListed) {
		t.Fatalf("err = %v, want ErrAlreadyListed", err)
	}
	for _, tc := range []struct {
		expected int64
		ok       bool
	}{{0, false}, {2, false}, {1, true}, {1, false}, {2, true}} {
		_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: shop.ItemStream("i1"), ExpectedRevision: eventstore.Revision(tc.expected),
			Events: []eventstore.EventData{{Type: "Note"}}})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, eventstore.ErrConflict)) {
			t.Errorf("expected revision %d: err = %v, want ok=%v", tc.expected, err, tc.ok)
		}
	}
	records, head, err := b.store.ReadStream(b.ctx, shop.ItemStream("i1"), 1)
	if err != nil || head != 3 || len(records) != 2 || records[0].Revision != 2 {
		t.Fatalf("ReadStream after 1: %d records, head %d, %v", len(records), head, err)
	}
}

func TestProjectFoldsAView(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.list(t, "i1", 10)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := eventstore.Dispatch(b.ctx, b.store, b.shop.Buy, shop.BuyItem{Item: "i1", Customer: fmt.Sprint(i)}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	view := eventstore.View[shop.Event, []string]{Evolve: func(buyers []string, r eventstore.Record[shop.Event]) []string {
		if s, ok := r.Event.(shop.ItemSold); ok {
			return append(buyers, s.Customer)
		}
		return buyers
	}}
	buyers, after, err := eventstore.Project(b.ctx, b.store, b.shop.Codec, eventstore.NewQuery(eventstore.Types(shop.TypeItemSold)), view)
	if err != nil || len(buyers) != 4 || after == nil || *after != 5 {
		t.Fatalf("buyers %v after %v err %v", buyers, after, err)
	}
}
