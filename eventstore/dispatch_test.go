package eventstore_test

import (
	"errors"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

func TestDispatchBuysAnItem(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t, &eventstore.Config{LockStrategy: strategy})
			b.list(t, "i1", 2)
			buy := b.shop.Buy

			res, err := eventstore.Dispatch(b.ctx, b.store, buy, shop.BuyItem{Item: "i1", Customer: "ada"},
				&eventstore.DispatchOpts{Metadata: eventstore.Metadata{"correlation_id": "x1"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != 1 {
				t.Fatalf("got %d records, want 1", len(res.Records))
			}
			rec := res.Records[0]
			sold, ok := rec.Event.(shop.ItemSold)
			if !ok || sold.Edition != 1 || sold.Customer != "ada" {
				t.Fatalf("event = %#v", rec.Event)
			}
			if rec.Stream != "customer-ada" || rec.Revision != 1 || res.Revision != 1 || rec.Position <= 1 {
				t.Fatalf("record = %+v", rec.RawRecord)
			}
			if rec.Metadata["correlation_id"] != "x1" || rec.RecordedAt.IsZero() {
				t.Fatalf("metadata/time = %v %v", rec.Metadata, rec.RecordedAt)
			}

			// The stored record reads back identical.
			got, err := b.store.ReadPositions(b.ctx, rec.Position)
			if err != nil || len(got) != 1 {
				t.Fatalf("read back: %v %v", got, err)
			}
			if got[0].ID != rec.ID || got[0].Type != shop.TypeItemSold || got[0].Version != 2 ||
				len(got[0].Tags) != 2 || got[0].Tags[0] != "item:i1" || got[0].Tags[1] != "customer:ada" ||
				got[0].Metadata["correlation_id"] != "x1" || !got[0].RecordedAt.Equal(rec.RecordedAt) {
				t.Fatalf("read back %+v, dispatched %+v", got[0], rec.RawRecord)
			}

			if _, err := eventstore.Dispatch(b.ctx, b.store, buy, shop.BuyItem{Item: "i1", Customer: "bob"}, nil); err != nil {
				t.Fatal(err)
			}
			_, err = eventstore.Dispatch(b.ctx, b.store, buy, shop.BuyItem{Item: "i1", Customer: "cy"}, nil)
			var rej *eventstore.RejectedError
			if !errors.As(err, &rej) || !errors.Is(err, shop.ErrSoldOut) || !errors.Is(err, eventstore.ErrRejected) {
				t.Fatalf("third buyer: err = %v, want sold out rejection", err)
			}
			if c := b.counts(t); c.events != 3 || c.tags != 5 {
				t.Fatalf("counts = %+v", c)
			}
		})
	}
}
