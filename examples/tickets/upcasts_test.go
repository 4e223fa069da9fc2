package tickets_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
)

// saleV1 is a concert's sale as the release before TicketSold version 2
// stored it (testdata/sale_v1.json, written by that release's codec):
// capacity 3, a direct sale to ada (seat 1), and bob's reservation r1,
// confirmed as seat 2.
func saleV1(t testing.TB) []eventstore.EventData {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "sale_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stored []struct {
		Type    string          `json:"type"`
		Version int             `json:"version"`
		Tags    []string        `json:"tags"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	out := make([]eventstore.EventData, len(stored))
	for i, s := range stored {
		out[i] = eventstore.EventData{Type: s.Type, Version: s.Version, Tags: s.Tags, Data: s.Data}
	}
	return out
}

// Version 1 sales decode as version 2, with the channel derived from the
// reservation; new sales are written at version 2.
func TestTicketSoldUpcast(t *testing.T) {
	t.Parallel()
	want := []tickets.Event{scheduled("c1", 3), sold("ada", 1), reserved("bob", "r1"), confirmed("bob", 2, "r1")}
	history := saleV1(t)
	if len(history) != len(want) {
		t.Fatalf("testdata holds %d events, want %d", len(history), len(want))
	}
	for i, d := range history {
		if d.Version != 1 {
			t.Errorf("testdata event %d is at version %d, want 1", i, d.Version)
		}
		got, err := codec.Decode(eventstore.RawRecord{Type: d.Type, Version: d.Version, Tags: d.Tags, Data: d.Data})
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got != want[i] {
			t.Errorf("event %d decoded as %#v, want %#v", i, got, want[i])
		}
	}
	if d, err := codec.Encode(sold("ada", 1)); err != nil || d.Version != 2 {
		t.Errorf("a new sale is written at version %d (%v), want 2", d.Version, err)
	}

	for _, tt := range []struct {
		version int
		is      error
	}{{3, eventstore.ErrFutureVersion}, {0, eventstore.ErrNoUpcaster}} {
		_, err := codec.Decode(eventstore.RawRecord{Type: tickets.TypeTicketSold, Version: tt.version, Data: history[1].Data})
		var ve *eventstore.VersionError
		if !errors.Is(err, tt.is) || !errors.As(err, &ve) || ve.Current != 2 {
			t.Errorf("version %d: err = %v, want a *VersionError matching %v", tt.version, err, tt.is)
		}
	}
}

// Decisions, reactions and views read old history through the upcaster,
// in memory and through PostgreSQL.
func TestOldHistory(t *testing.T) {
	t.Parallel()
	scenarios{
		"the next seat": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.BuyTicketHandler(codec), opts).
				GivenData(saleV1(t)...).
				When(tickets.BuyTicket{ConcertID: "c1", BuyerID: "cy"}).
				Then(sold("cy", 3))
		},
		"old and new sales fill the concert": func(t *testing.T, opts *factostest.HandlerOpts) {
			factostest.ForHandler(t, tickets.ReserveTicketHandler(codec), opts).
				GivenData(saleV1(t)...).Given(sold("cy", 3)).
				When(tickets.ReserveTicket{ConcertID: "c1", BuyerID: "dee", ReservationID: "r2"}).
				ThenRejected(tickets.ErrSoldOut)
		},
		"sales by channel": func(t *testing.T, opts *factostest.HandlerOpts) {
			q := tickets.SaleStateQuery("c1")
			factostest.ForView(t, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Query: &q, Store: opts.Store}).
				GivenData(saleV1(t)...).Given(sold("cy", 3)).
				Then(tickets.SaleState{
					Capacity: 3,
					Sold:     map[string]int{tickets.SaleDirect: 2, tickets.SaleReservation: 1},
					Buyers:   map[int]string{1: "ada", 2: "bob", 3: "cy"},
					Held:     map[string]string{},
				})
		},
	}.run(t)

	t.Run("announcement", func(t *testing.T) {
		t.Parallel()
		old := factostest.ForReactor(t, tickets.AnnounceSalesReactor(codec)).GivenData(saleV1(t)[3])
		id := old.Record().ID.String()
		old.Then(eventstore.PlannedEffect{Kind: tickets.EffectAnnounceTicketSale, Key: "announce-sale:" + id, OrderingKey: tickets.BuyerTag("bob"),
			Args: tickets.AnnounceTicketSale{ConcertID: "c1", BuyerID: "bob", Seat: 2, EventID: id}})
	})
}
