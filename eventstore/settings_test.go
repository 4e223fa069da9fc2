package eventstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// Every writer of a database must use one lock strategy. The first store
// records its own; a store configured with another is refused before it
// reads or writes anything, until an operator changes the recorded one.
func TestStoresWithAnotherLockStrategyAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil) // keys
	if got, err := eventstore.RecordedLockStrategy(b.ctx, b.pool); err != nil || got != "" {
		t.Fatalf("a new database records %q (%v), want nothing", got, err)
	}
	b.list(t, "i1", 10)
	if got, err := eventstore.RecordedLockStrategy(b.ctx, b.pool); err != nil || got != eventstore.LockKeys {
		t.Fatalf("recorded %q (%v) after the first dispatch, want keys", got, err)
	}

	table, err := eventstore.New(b.pool, &eventstore.Config{LockStrategy: eventstore.LockTable})
	if err != nil {
		t.Fatal(err)
	}
	before := b.counts(t)
	refused := map[string]error{}
	_, refused["dispatch"] = eventstore.Dispatch(b.ctx, table, b.shop.Buy, shop.BuyItem{Item: "i1", Customer: "ada"}, nil)
	_, refused["append"] = table.Append(b.ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: "T", Data: []byte("{}")}}})
	_, refused["catch-up read"] = table.ReadAfter(b.ctx, 0, nil)
	_, refused["read"] = table.Read(b.ctx, eventstore.AllEvents())
	refused["start-up check"] = table.CheckLockStrategy(b.ctx)
	for op, err := range refused {
		var mismatch *eventstore.StrategyMismatchError
		if !errors.As(err, &mismatch) || !errors.Is(err, eventstore.ErrStrategyMismatch) {
			t.Fatalf("%s with the table strategy on a keys database: err = %v, want *StrategyMismatchError", op, err)
		}
		if mismatch.Configured != eventstore.LockTable || mismatch.Recorded != eventstore.LockKeys {
			t.Errorf("%s: mismatch %+v", op, mismatch)
		}
		for _, want := range []string{`"table"`, `"keys"`, "stop every writer", "worker lock-strategy set table"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q does not say %s", op, err, want)
			}
		}
	}
	if after := b.counts(t); after != before {
		t.Errorf("a refused store wrote: %+v -> %+v", before, after)
	}

	// The operator's change, with the writers stopped.
	var unknown *eventstore.UnknownLockStrategyError
	if err := eventstore.SetLockStrategy(b.ctx, b.pool, "serializable"); !errors.As(err, &unknown) {
		t.Fatalf("SetLockStrategy(serializable): err = %v, want *UnknownLockStrategyError", err)
	}
	if err := eventstore.SetLockStrategy(b.ctx, b.pool, eventstore.LockTable); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.Dispatch(b.ctx, table, b.shop.Buy, shop.BuyItem{Item: "i1", Customer: "ada"}, nil); err != nil {
		t.Fatalf("dispatch after the change: %v", err)
	}
	keys, err := eventstore.New(b.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CheckLockStrategy(b.ctx); !errors.Is(err, eventstore.ErrStrategyMismatch) {
		t.Fatalf("a keys store after the change to table: %v", err)
	}
}

// Stores with different strategies racing to use a new database: exactly
// one strategy is recorded, and every store of the other is refused.
func TestFirstUseRecordsOneStrategy(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		b := setup(t, nil)
		stores := make([]*eventstore.Store, 16)
		for i := range stores {
			var err error
			stores[i], err = eventstore.New(b.pool, &eventstore.Config{LockStrategy: eventstore.LockStrategies[i%2]})
			if err != nil {
				t.Fatal(err)
			}
		}
		errs := race(len(stores), len(stores), func(i int) error {
			_, err := stores[i].Append(b.ctx, eventstore.AppendRequest{Stream: fmt.Sprint("s", i), Events: []eventstore.EventData{{Type: "T", Data: []byte("{}")}}})
			return err
		})
		recorded, err := eventstore.RecordedLockStrategy(b.ctx, b.pool)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			mine := eventstore.LockStrategies[i%2]
			switch {
			case mine == recorded && err != nil:
				t.Errorf("round %d: store %d (%s, the recorded one) failed: %v", round, i, mine, err)
			case mine != recorded && !errors.Is(err, eventstore.ErrStrategyMismatch):
				t.Errorf("round %d: store %d (%s, recorded %s): err = %v, want a mismatch", round, i, mine, recorded, err)
			}
		}
	}
}
