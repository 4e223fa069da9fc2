package outbox_test

import (
	"slices"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/outbox"
)

// One job per group of reactors that share queue, attempts and priority,
// covering the events some reactor of the group wants; no job for a group
// that wants none of them.
func TestPlanGroupsReactorsByQueue(t *testing.T) {
	t.Parallel()
	ob, err := outbox.New([]outbox.Subscription{
		{Reactor: "sold", Query: eventstore.NewQuery(eventstore.Types("TicketSold"))},
		{Reactor: "vip", Query: eventstore.NewQuery(eventstore.Tags("buyer:vip")), Queue: "vip", MaxAttempts: 3, Priority: 2},
		{Reactor: "audit", Query: eventstore.AllEvents()},
		{Reactor: "refunds", Query: eventstore.NewQuery(eventstore.Types("Refunded")), Queue: "vip", MaxAttempts: 3, Priority: 2},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := []eventstore.EventData{
		{Type: "TicketSold", Tags: []string{"buyer:vip"}},
		{Type: "UserRegistered", Tags: []string{"user:1"}},
	}
	got := ob.Plan(events)
	want := []outbox.Planned{
		{Queue: outbox.DefaultQueue, MaxAttempts: outbox.DefaultMaxAttempts, Priority: 1, Reactors: []string{"sold", "audit"}, Events: []int{0, 1}},
		{Queue: "vip", MaxAttempts: 3, Priority: 2, Reactors: []string{"vip"}, Events: []int{0}},
	}
	if len(got) != len(want) {
		t.Fatalf("plan %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Queue != w.Queue || g.MaxAttempts != w.MaxAttempts || g.Priority != w.Priority || !slices.Equal(g.Reactors, w.Reactors) || !slices.Equal(g.Events, w.Events) {
			t.Errorf("job %d: %+v, want %+v", i, g, w)
		}
	}
	if p := ob.Plan([]eventstore.EventData{{Type: "Nothing"}}); len(p) != 1 || !slices.Equal(p[0].Reactors, []string{"audit"}) {
		t.Errorf("an event only the audit reactor wants: %+v", p)
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
		if _, err := outbox.New(subs, nil); err == nil {
			t.Errorf("accepted %+v", subs)
		}
	}
	if _, err := outbox.New(nil, &outbox.Config{NotifyInterval: -1}); err == nil {
		t.Error("accepted a negative notify interval")
	}
}
