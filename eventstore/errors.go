package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the store returns matches exactly one of
// ErrRejected, ErrConflict, ErrDecode, ErrEncode, ErrInvalidInput,
// ErrStrategyMismatch (settings.go) or ErrStore with errors.Is; the
// exported error types carry the details.
var (
	// ErrRejected: the decider rejected the command (a domain error).
	ErrRejected = errors.New("command rejected")

	// ErrConflict: the append's context changed, or concurrency conflicts
	// outlasted the retry budget.
	ErrConflict = errors.New("conflict")

	// ErrDecode: a stored event could not be decoded by the codec.
	ErrDecode = errors.New("decode failure")

	// ErrEncode: the codec failed to encode an event.
	ErrEncode = errors.New("encode failure")

	// ErrInvalidInput: an event, query, stream or option failed validation.
	// Nothing was written.
	ErrInvalidInput = errors.New("invalid input")

	// ErrStore: the database failed (connection lost, context cancelled,
	// unexpected SQL error). Nothing was written unless
	// StoreError.CommitUnknown is set.
	ErrStore = errors.New("store failure")

	// ErrCommandIDReused: the command id was already used by another
	// command (another stream or another fingerprint). Nothing was
	// written. It refines ErrInvalidInput: a *CommandIDReusedError matches
	// both.
	ErrCommandIDReused = errors.New("command id reused")

	// ErrUnknownEventType is wrapped by codecs that meet a type they do not
	// know; it reaches callers inside a *DecodeError or *EncodeError.
	ErrUnknownEventType = errors.New("unknown event type")
)

// RejectedError carries the decider's domain error. errors.Is and errors.As
// see through it to the domain error.
type RejectedError struct {
	Err error
}

func (e *RejectedError) Error() string        { return "command rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error        { return e.Err }
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// ConflictError reports a context that changed under the decision.
type ConflictError struct {
	// Reason says what conflicted, for example "stream revision" or
	// "serialization failure".
	Reason string
	// Attempts is how many times the dispatch ran before giving up.
	Attempts int
	// Err is the last underlying cause, if any.
	Err error
}

func (e *ConflictError) Error() string {
	msg := "conflict: " + e.Reason
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}
func (e *ConflictError) Unwrap() error        { return e.Err }
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// DecodeError reports a stored event the codec could not decode.
type DecodeError struct {
	Position Position
	Type     string
	Version  int
	Err      error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("error decoding event %q (version %d) at position %d: %v", e.Type, e.Version, e.Position, e.Err)
}
func (e *DecodeError) Unwrap() error        { return e.Err }
func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

// EncodeError reports an event the codec could not encode.
type EncodeError struct {
	// Index of the event in the decision's output.
	Index int
	Err   error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("error encoding event %d: %v", e.Index, e.Err)
}
func (e *EncodeError) Unwrap() error        { return e.Err }
func (e *EncodeError) Is(target error) bool { return target == ErrEncode }

// InvalidInputError names the field that failed validation and why.
type InvalidInputError struct {
	// Field is a path such as "events[2].tags[0]" or "stream".
	Field string
	// Reason is a short description such as "empty" or "too long".
	Reason string
}

func (e *InvalidInputError) Error() string {
	return fmt.Sprintf("invalid input: %s: %s", e.Field, e.Reason)
}
func (e *InvalidInputError) Is(target error) bool { return target == ErrInvalidInput }

// CommandIDReusedError reports a command id that names another command: a
// dispatch under it went to another stream, or stored another fingerprint
// (see DispatchOpts.Fingerprint). It matches ErrCommandIDReused and
// ErrInvalidInput. Retrying cannot help: the caller must choose another id
// or resend the command the id was first used for.
type CommandIDReusedError struct {
	CommandID string
	// Stream is this dispatch's stream, PriorStream the first one's.
	Stream      string
	PriorStream string
	// Reason says what differs.
	Reason string
}

func (e *CommandIDReusedError) Error() string {
	return fmt.Sprintf("invalid input: command id %q %s", e.CommandID, e.Reason)
}
func (e *CommandIDReusedError) Is(target error) bool {
	return target == ErrCommandIDReused || target == ErrInvalidInput
}

// StoreError wraps a database failure. Context cancellation and deadlines
// arrive as a StoreError wrapping context.Canceled or
// context.DeadlineExceeded.
type StoreError struct {
	// Op is what the store was doing, for example "commit".
	Op string
	// CommitUnknown is set when the connection failed, or the server ended
	// the session (FATAL: a terminated backend, a shutdown), while COMMIT
	// was in flight: the append may or may not have committed. Retrying
	// with the same command id is safe and answers with the stored result.
	CommitUnknown bool
	Err           error
}

func (e *StoreError) Error() string {
	msg := "store failure: error " + e.Op
	if e.CommitUnknown {
		msg += " (commit outcome unknown)"
	}
	return msg + ": " + e.Err.Error()
}
func (e *StoreError) Unwrap() error        { return e.Err }
func (e *StoreError) Is(target error) bool { return target == ErrStore }
