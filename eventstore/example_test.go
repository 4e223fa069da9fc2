package eventstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/factos-go/factos/eventstore"
)

// SeatBooked is the event of ExampleDispatch: one seat of a workshop,
// booked by an attendee. Seats are numbered from 1.
type SeatBooked struct {
	Workshop string `json:"workshop"`
	Attendee string `json:"attendee"`
	Seat     int    `json:"seat"`
}

// BookSeat is the command of ExampleDispatch.
type BookSeat struct{ Workshop, Attendee string }

var errWorkshopFull = errors.New("workshop full")

// Dispatch a command through a decider: a workshop's seat limit holds
// across every attendee's stream.
func ExampleDispatch() {
	ctx := context.Background()
	pool, done := examplePool()
	defer done()

	store, err := eventstore.New(pool, nil) // LockKeys by default
	if err != nil {
		panic(err)
	}
	codec := eventstore.NewJSONCodec[SeatBooked]()
	eventstore.RegisterJSON(codec, eventstore.JSONType[SeatBooked]{
		Name: "SeatBooked",
		Tags: func(e SeatBooked) []string { return []string{"workshop:" + e.Workshop} },
	})

	const seats = 1
	book := eventstore.Handler[BookSeat, SeatBooked, int]{
		Codec: codec,
		// Each booking is appended to the attendee's own stream...
		Stream: func(c BookSeat) string { return "attendee-" + c.Attendee },
		// ...but the decision reads every booking of the workshop, in any
		// stream, and is appended only if none came in meanwhile.
		Query: func(c BookSeat) eventstore.Query {
			return eventstore.NewQuery(eventstore.TypesAndTags([]string{"SeatBooked"}, "workshop:"+c.Workshop))
		},
		Decider: eventstore.Decider[BookSeat, SeatBooked, int]{
			Evolve: func(booked int, _ SeatBooked) int { return booked + 1 },
			Decide: func(booked int, c BookSeat) ([]SeatBooked, error) {
				if booked >= seats {
					return nil, errWorkshopFull
				}
				return []SeatBooked{{Workshop: c.Workshop, Attendee: c.Attendee, Seat: booked + 1}}, nil
			},
		},
	}

	res, err := eventstore.Dispatch(ctx, store, book, BookSeat{Workshop: "go", Attendee: "ada"}, nil)
	if err != nil {
		panic(err)
	}
	booked := res.Records[0].Event
	fmt.Printf("seat %d to %s, stream %s revision %d\n", booked.Seat, booked.Attendee, res.Records[0].Stream, res.Revision)

	_, err = eventstore.Dispatch(ctx, store, book, BookSeat{Workshop: "go", Attendee: "bob"}, nil)
	fmt.Println("bob:", err, errors.Is(err, errWorkshopFull))
	// Output:
	// seat 1 to ada, stream attendee-ada revision 1
	// bob: command rejected: workshop full true
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
