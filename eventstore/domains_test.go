package eventstore_test

import (
	"errors"
	"fmt"

	"github.com/factos-go/factos/eventstore"
)

// Small domains that exercise every query shape the store must get right.
// The shop domain (internal/shop) covers types+tags across streams.

type testEvent interface{ isTestEvent() }

// Invoices: a types-only rule. Invoice numbers are gapless and unique, so
// every new invoice depends on every earlier InvoiceCreated.
type InvoiceCreated struct {
	InvoiceID string `json:"invoice_id"`
	Number    int    `json:"number"`
}

// Checkpoints: an all-events rule. A checkpoint records how many events
// preceded it, so it depends on every event of every type.
type Checkpoint struct {
	Seen int `json:"seen"`
}

// Noise is appended unconditionally by writers that read nothing.
type Noise struct {
	N int `json:"n"`
}

// Courses: a multi-item OR rule. A subscription depends on its course (its
// capacity and subscriptions) and on its student (how many courses they
// already take).
type CourseDefined struct {
	Course   string `json:"course"`
	Capacity int    `json:"capacity"`
}

type StudentSubscribed struct {
	Course  string `json:"course"`
	Student string `json:"student"`
}

// Counters: a stream-revision rule.
type Incremented struct {
	N int `json:"n"`
}

func (InvoiceCreated) isTestEvent()    {}
func (Checkpoint) isTestEvent()        {}
func (Noise) isTestEvent()             {}
func (CourseDefined) isTestEvent()     {}
func (StudentSubscribed) isTestEvent() {}
func (Incremented) isTestEvent()       {}

func newTestCodec() *eventstore.JSONCodec[testEvent] {
	c := eventstore.NewJSONCodec[testEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[InvoiceCreated]{Name: "InvoiceCreated",
		Tags: func(e InvoiceCreated) []string { return []string{"invoice:" + e.InvoiceID} }})
	eventstore.RegisterJSON(c, eventstore.JSONType[Checkpoint]{Name: "Checkpoint"})
	eventstore.RegisterJSON(c, eventstore.JSONType[Noise]{Name: "Noise",
		Tags: func(e Noise) []string { return []string{fmt.Sprintf("noise:%d", e.N)} }})
	eventstore.RegisterJSON(c, eventstore.JSONType[CourseDefined]{Name: "CourseDefined",
		Tags: func(e CourseDefined) []string { return []string{"course:" + e.Course} }})
	eventstore.RegisterJSON(c, eventstore.JSONType[StudentSubscribed]{Name: "StudentSubscribed",
		Tags: func(e StudentSubscribed) []string { return []string{"course:" + e.Course, "student:" + e.Student} }})
	eventstore.RegisterJSON(c, eventstore.JSONType[Incremented]{Name: "Incremented"})
	return c
}

type CreateInvoice struct{ InvoiceID string }

func invoiceHandler(codec eventstore.Codec[testEvent]) eventstore.Handler[CreateInvoice, testEvent, int] {
	return eventstore.Handler[CreateInvoice, testEvent, int]{
		Codec:  codec,
		Stream: func(c CreateInvoice) string { return "invoice-" + c.InvoiceID },
		Query:  func(CreateInvoice) eventstore.Query { return eventstore.NewQuery(eventstore.Types("InvoiceCreated")) },
		Decider: eventstore.Decider[CreateInvoice, testEvent, int]{
			Evolve: func(n int, _ testEvent) int { return n + 1 },
			Decide: func(n int, c CreateInvoice) ([]testEvent, error) {
				return []testEvent{InvoiceCreated{InvoiceID: c.InvoiceID, Number: n + 1}}, nil
			},
		},
	}
}

type TakeCheckpoint struct{ ID string }

func checkpointHandler(codec eventstore.Codec[testEvent]) eventstore.Handler[TakeCheckpoint, testEvent, int] {
	return eventstore.Handler[TakeCheckpoint, testEvent, int]{
		Codec:  codec,
		Stream: func(c TakeCheckpoint) string { return "checkpoint-" + c.ID },
		Query:  func(TakeCheckpoint) eventstore.Query { return eventstore.AllEvents() },
		Decider: eventstore.Decider[TakeCheckpoint, testEvent, int]{
			Evolve: func(n int, _ testEvent) int { return n + 1 },
			Decide: func(n int, _ TakeCheckpoint) ([]testEvent, error) { return []testEvent{Checkpoint{Seen: n}}, nil },
		},
	}
}

var (
	errCourseFull      = errors.New("course full")
	errTooManyCourses  = errors.New("student takes too many courses")
	errAlreadyEnrolled = errors.New("already subscribed")
	errNoCourse        = errors.New("no such course")
)

const maxCoursesPerStudent = 3

type Subscribe struct{ Course, Student string }

// enrolment keeps the raw facts; Decide interprets them for the command.
type enrolment struct {
	capacity map[string]int
	subs     []StudentSubscribed
}

func subscribeHandler(codec eventstore.Codec[testEvent]) eventstore.Handler[Subscribe, testEvent, enrolment] {
	return eventstore.Handler[Subscribe, testEvent, enrolment]{
		Codec:  codec,
		Stream: func(c Subscribe) string { return "student-" + c.Student },
		Query: func(c Subscribe) eventstore.Query {
			return eventstore.NewQuery(
				eventstore.TypesAndTags([]string{"CourseDefined", "StudentSubscribed"}, "course:"+c.Course),
				eventstore.TypesAndTags([]string{"StudentSubscribed"}, "student:"+c.Student),
			)
		},
		Decider: eventstore.Decider[Subscribe, testEvent, enrolment]{
			Initial: func() enrolment { return enrolment{capacity: map[string]int{}} },
			Evolve: func(s enrolment, e testEvent) enrolment {
				switch e := e.(type) {
				case CourseDefined:
					s.capacity[e.Course] = e.Capacity
				case StudentSubscribed:
					s.subs = append(s.subs, e)
				}
				return s
			},
			Decide: func(s enrolment, c Subscribe) ([]testEvent, error) {
				capacity, ok := s.capacity[c.Course]
				if !ok {
					return nil, errNoCourse
				}
				inCourse, ofStudent := 0, 0
				for _, sub := range s.subs {
					if sub.Course == c.Course && sub.Student == c.Student {
						return nil, errAlreadyEnrolled
					}
					if sub.Course == c.Course {
						inCourse++
					}
					if sub.Student == c.Student {
						ofStudent++
					}
				}
				switch {
				case inCourse >= capacity:
					return nil, errCourseFull
				case ofStudent >= maxCoursesPerStudent:
					return nil, errTooManyCourses
				}
				return []testEvent{StudentSubscribed(c)}, nil
			},
		},
	}
}

type Increment struct{ Counter string }

func counterHandler(codec eventstore.Codec[testEvent]) eventstore.Handler[Increment, testEvent, int] {
	return eventstore.Handler[Increment, testEvent, int]{
		Codec:  codec,
		Stream: func(c Increment) string { return "counter-" + c.Counter },
		Decider: eventstore.Decider[Increment, testEvent, int]{
			Evolve: func(n int, e testEvent) int { return e.(Incremented).N },
			Decide: func(n int, _ Increment) ([]testEvent, error) { return []testEvent{Incremented{N: n + 1}}, nil },
		},
	}
}
