package eventstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
)

// Dispatch a command through a decider: the ticket sale's capacity rule
// holds across every buyer's stream.
func ExampleDispatch() {
	ctx := context.Background()
	pool, done := examplePool()
	defer done()

	store, err := eventstore.New(pool, nil) // LockKeys by default
	if err != nil {
		panic(err)
	}
	codec := tickets.NewCodec()

	_, err = eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec),
		tickets.ScheduleConcert{ConcertID: "c1", Capacity: 1}, nil)
	if err != nil {
		panic(err)
	}

	buy := tickets.BuyTicketHandler(codec)
	res, err := eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, nil)
	if err != nil {
		panic(err)
	}
	sold := res.Records[0].Event.(tickets.TicketSold)
	fmt.Printf("seat %d to %s, stream %s revision %d\n", sold.Seat, sold.BuyerID, res.Records[0].Stream, res.Revision)

	_, err = eventstore.Dispatch(ctx, store, buy, tickets.BuyTicket{ConcertID: "c1", BuyerID: "bob"}, nil)
	fmt.Println("bob:", err, errors.Is(err, tickets.ErrSoldOut))
	// Output:
	// seat 1 to ada, stream buyer-ada revision 1
	// bob: command rejected: sold out true
}

// Read a context, decide outside the store, and append only if the context
// is unchanged: the DCB read/append pair.
func ExampleStore_Append() {
	ctx := context.Background()
	pool, done := examplePool()
	defer done()
	store, _ := eventstore.New(pool, nil)

	q := eventstore.NewQuery(eventstore.TypesAndTags([]string{"UserRegistered"}, "username:ada"))
	read, _ := store.Read(ctx, q)
	fmt.Println("taken:", len(read.Records) > 0)

	register := func(user string) error {
		_, err := store.Append(ctx, eventstore.AppendRequest{
			Stream:    "user-" + user,
			Events:    []eventstore.EventData{{Type: "UserRegistered", Tags: []string{"username:ada", "user:" + user}}},
			Condition: eventstore.FailIfEventsMatch(q, read.After),
		})
		return err
	}
	fmt.Println("first:", register("1"))
	// The second decision was made from the same, now stale, read.
	err := register("2")
	fmt.Println("second conflicts:", errors.Is(err, eventstore.ErrConflict))
	// Output:
	// taken: false
	// first: <nil>
	// second conflicts: true
}

// Catch up on the log from a position, page by page.
func ExampleStore_ReadAfter() {
	ctx := context.Background()
	pool, done := examplePool()
	defer done()
	store, _ := eventstore.New(pool, nil)
	for i := range 5 {
		_, _ = store.Append(ctx, eventstore.AppendRequest{Stream: fmt.Sprint("s", i), Events: []eventstore.EventData{{Type: "Tick"}}})
	}

	var next eventstore.Position
	for {
		page, err := store.ReadAfter(ctx, next, &eventstore.ReadAfterOpts{Limit: 2})
		if err != nil {
			panic(err)
		}
		for _, r := range page.Records {
			fmt.Print(r.Position, " ")
		}
		next = page.Next
		if len(page.Records) < 2 {
			break
		}
	}
	fmt.Println()
	// Output: 1 2 3 4 5
}
