package outbox_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
)

func TestSubscriptionsRouteRecords(t *testing.T) {
	t.Parallel()
	ob, err := outbox.New(inserter{}, []outbox.Subscription{
		{Reactor: "sold", Query: eventstore.NewQuery(eventstore.Types("TicketSold"))},
		{Reactor: "vip", Query: eventstore.NewQuery(eventstore.Tags("buyer:vip")), Queue: "vip", MaxAttempts: 3, Priority: 2},
		{Reactor: "audit", Query: eventstore.AllEvents()},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := []eventstore.RawRecord{
		{ID: uuid.New(), Position: 7, Type: "TicketSold", Tags: []string{"buyer:vip"}, Stream: "s"},
		{ID: uuid.New(), Position: 8, Type: "UserRegistered", Tags: []string{"user:1"}, Stream: "s"},
	}
	jobs := ob.Jobs(recs)
	var got []string
	for _, j := range jobs {
		a := j.Args.(outbox.ReactionArgs)
		got = append(got, a.Kind())
		if a.EventID == "" || a.Position == 0 || a.EventType == "" || !j.InsertOpts.UniqueOpts.ByArgs {
			t.Errorf("job %+v %+v", a, j.InsertOpts)
		}
		if a.Reactor == "vip" && (j.InsertOpts.Queue != "vip" || j.InsertOpts.MaxAttempts != 3 || j.InsertOpts.Priority != 2) {
			t.Errorf("vip options %+v", j.InsertOpts)
		}
		if a.Reactor == "sold" && (j.InsertOpts.Queue != outbox.DefaultQueue || j.InsertOpts.MaxAttempts != outbox.DefaultMaxAttempts) {
			t.Errorf("default options %+v", j.InsertOpts)
		}
	}
	want := []string{"factos.reaction.sold", "factos.reaction.vip", "factos.reaction.audit", "factos.reaction.audit"}
	if len(got) != len(want) {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("jobs %v, want %v", got, want)
		}
	}
}

func TestSubscriptionValidation(t *testing.T) {
	t.Parallel()
	for _, subs := range [][]outbox.Subscription{
		{{Reactor: "", Query: eventstore.AllEvents()}},
		{{Reactor: "has space", Query: eventstore.AllEvents()}},
		{{Reactor: "x", Query: eventstore.Query{}}},
		{{Reactor: "x", Query: eventstore.AllEvents(), Priority: 9}},
		{{Reactor: "x", Query: eventstore.AllEvents()}, {Reactor: "x", Query: eventstore.AllEvents()}},
	} {
		if _, err := outbox.New(inserter{}, subs); err == nil {
			t.Errorf("accepted %+v", subs)
		}
	}
	if _, err := outbox.New(nil, nil); err == nil {
		t.Error("accepted a nil client")
	}
}

// inserter satisfies outbox.Inserter for tests of routing, which never
// insert; inserting is tested against a real River client in reactors.
type inserter struct{}

func (inserter) InsertManyTx(context.Context, pgx.Tx, []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return nil, nil
}
