package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/factos-go/factos/eventstore"
)

var (
	// ErrInvalidProjection: AddProjection was given a projection with a
	// missing or invalid field, or a name already registered.
	ErrInvalidProjection = errors.New("invalid projection")

	// ErrInvalidConfig: New was given an invalid Config.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrUnknownProjection: no projection of that name is registered.
	ErrUnknownProjection = errors.New("unknown projection")

	// ErrNoReset: the projection has no Reset function, so it cannot be
	// reset or rebuilt without applying events twice.
	ErrNoReset = errors.New("projection has no Reset function")

	// ErrInvalidPosition: a reset, rebuild or skip named a position that
	// cannot be used (negative, beyond the log's head, or, for a skip, not
	// an event the projection would apply).
	ErrInvalidPosition = errors.New("invalid position")

	// ErrAlreadyApplied: a skip named a position the projection has
	// already passed.
	ErrAlreadyApplied = errors.New("position already applied")

	// ErrWaitTimeout: WaitFor's deadline passed before the projection
	// applied the position. The error is a *WaitTimeoutError.
	ErrWaitTimeout = errors.New("timed out waiting for projection")

	// ErrNotStarted: the operation needs a started Client.
	ErrNotStarted = errors.New("client not started")
)

// WaitTimeoutError is WaitFor's error when its deadline passes first. It
// matches ErrWaitTimeout and context.DeadlineExceeded.
type WaitTimeoutError struct {
	Projection string
	// Position waited for.
	Position eventstore.Position
	// Reached is the projection's checkpoint when the wait gave up.
	Reached eventstore.Position
	// Stuck, when set, is the status of a projection that is stuck:
	// the reason it did not get there.
	Stuck *Status
}

func (e *WaitTimeoutError) Error() string {
	msg := fmt.Sprintf("projections: timed out waiting for %s to apply position %d (at %d)", e.Projection, e.Position, e.Reached)
	if e.Stuck != nil {
		msg += fmt.Sprintf("; it is stuck at position %d after %d attempts: %s", e.Stuck.FailingPosition, e.Stuck.Attempts, e.Stuck.LastError)
	}
	return msg
}

// Is matches ErrWaitTimeout and context.DeadlineExceeded.
func (e *WaitTimeoutError) Is(target error) bool {
	return target == ErrWaitTimeout || target == context.DeadlineExceeded
}

// ApplyError is a failed attempt to apply events: the error of Apply (or
// of decoding a record), with the positions it concerned. It is what a
// stuck projection's status reports and what the runner logs.
type ApplyError struct {
	Projection string
	// First and Last are the batch's first and last positions; they are
	// equal once the runner has narrowed a failing batch to one event.
	First, Last eventstore.Position
	Err         error
}

func (e *ApplyError) Error() string {
	if e.First == e.Last {
		return fmt.Sprintf("projections: %s: error applying position %d: %v", e.Projection, e.First, e.Err)
	}
	return fmt.Sprintf("projections: %s: error applying positions %d to %d: %v", e.Projection, e.First, e.Last, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// PanicError is the error of a batch whose Apply (or codec) panicked: the
// batch rolls back and is retried like one that returned an error. Its
// message is the panic's value; Stack is where it happened, for the log.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }
