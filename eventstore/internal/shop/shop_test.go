package shop_test

import (
	"errors"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/eventstore/internal/shop"
)

// A sale stored at version 1 reads as the current ItemSold, and new sales
// are written at version 2.
func TestItemSoldVersions(t *testing.T) {
	t.Parallel()
	codec := shop.NewCodec()
	want := shop.ItemSold{Item: "i1", Customer: "ada", Edition: 3}

	got, err := codec.Decode(eventstore.RawRecord{Type: shop.TypeItemSold, Version: 1, Data: []byte(`{"item":"i1","buyer":"ada","edition":3}`)})
	if err != nil || got != want {
		t.Fatalf("version 1 decoded as %#v, %v; want %#v", got, err, want)
	}
	data, err := codec.Encode(want)
	if err != nil || data.Version != 2 || len(data.Tags) != 2 || data.Tags[0] != "item:i1" || data.Tags[1] != "customer:ada" {
		t.Fatalf("encoded %+v, %v; want version 2 tagged item:i1 and customer:ada", data, err)
	}
}

// The purchase rule alone, without a store: editions count from 1, and
// the stock, once sold, refuses the next buyer.
func TestBuyDecides(t *testing.T) {
	t.Parallel()
	buy := shop.New().Buy.Decider
	cmd := shop.BuyItem{Item: "i1", Customer: "ada"}
	for _, tc := range []struct {
		name    string
		history []shop.Event
		want    shop.Event
		err     error
	}{
		{name: "not listed", err: shop.ErrNotListed},
		{name: "first", history: []shop.Event{shop.ItemListed{Item: "i1", Stock: 2}}, want: shop.ItemSold{Item: "i1", Customer: "ada", Edition: 1}},
		{name: "last", history: []shop.Event{shop.ItemListed{Item: "i1", Stock: 2}, shop.ItemSold{Item: "i1", Customer: "bob", Edition: 1}},
			want: shop.ItemSold{Item: "i1", Customer: "ada", Edition: 2}},
		{name: "sold out", history: []shop.Event{shop.ItemListed{Item: "i1", Stock: 1}, shop.ItemSold{Item: "i1", Customer: "bob", Edition: 1}},
			err: shop.ErrSoldOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := buy.Decide(buy.Fold(tc.history), cmd)
			if !errors.Is(err, tc.err) || (tc.err == nil && (len(got) != 1 || got[0] != tc.want)) {
				t.Fatalf("decided %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
