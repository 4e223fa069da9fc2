package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// This file holds event versioning: an event type's payload has a current
// version, new events are written at it, and payloads stored at an older
// version are upgraded ("upcast") one version at a time before they are
// decoded. History is never rewritten: the stored bytes stay as they were,
// and every read upgrades them.

// Version errors. A codec that cannot bring a stored payload to the current
// version of its type returns a *VersionError matching one of them; the
// store wraps it in a *DecodeError.
var (
	// ErrFutureVersion: the stored version is newer than the codec's
	// current version of the type. A newer release of the application wrote
	// it; this release cannot know what it means.
	ErrFutureVersion = errors.New("event version newer than the codec's current version")

	// ErrNoUpcaster: the stored version is older than the current version
	// and no chain of upcasters leads from it.
	ErrNoUpcaster = errors.New("no upcaster for event version")
)

// VersionError reports a stored event version that the codec cannot bring
// to the current version of its type. errors.Is matches it with
// ErrFutureVersion or ErrNoUpcaster.
type VersionError struct {
	// Type and Version of the stored event.
	Type    string
	Version int
	// Current is the codec's current version of Type.
	Current int
	// Oldest is the oldest version the type's upcasters start from; equal
	// to Current when the type has none.
	Oldest int
	// Err is ErrFutureVersion or ErrNoUpcaster.
	Err error
}

func (e *VersionError) Error() string {
	if errors.Is(e.Err, ErrFutureVersion) {
		return fmt.Sprintf("event %q version %d is newer than the codec's current version %d (written by a newer release of the application?)",
			e.Type, e.Version, e.Current)
	}
	from := fmt.Sprintf("the upcasters start at version %d", e.Oldest)
	if e.Oldest == e.Current {
		from = "the type has no upcasters"
	}
	return fmt.Sprintf("event %q version %d cannot be upcast to the current version %d: no upcaster from version %d (%s)",
		e.Type, e.Version, e.Current, e.Version, from)
}

func (e *VersionError) Unwrap() error { return e.Err }

// UpcastError reports an upcaster that failed on a stored payload.
type UpcastError struct {
	// Type of the event and From, the version the failing upcaster reads.
	Type string
	From int
	Err  error
}

func (e *UpcastError) Error() string {
	return fmt.Sprintf("error upcasting event %q from version %d to %d: %v", e.Type, e.From, e.From+1, e.Err)
}

func (e *UpcastError) Unwrap() error { return e.Err }

// Upcaster upgrades the stored payload of one event type by one version,
// from version From to From+1. Upcasters chain: a payload stored at version
// 1 of a type whose current version is 3 runs through the upcaster from 1,
// then the one from 2, and is then decoded as version 3. Like codecs,
// upcasters must be pure.
type Upcaster struct {
	// From is the version the upcaster reads; it returns version From+1.
	From int
	// Upcast returns the payload at version From+1. Required.
	Upcast func(data []byte) ([]byte, error)
}

// UpcastJSON returns the Upcaster from version from that decodes a JSON
// payload as Old, maps it with f and encodes the result, a New, as the
// payload of version from+1. Old is usually a frozen copy of the type as it
// was at version from (unexported, next to the upcaster); for the last
// step New is the current Go type itself.
func UpcastJSON[Old, New any](from int, f func(Old) (New, error)) Upcaster {
	return Upcaster{From: from, Upcast: func(data []byte) ([]byte, error) {
		var old Old
		if err := json.Unmarshal(data, &old); err != nil {
			return nil, fmt.Errorf("error decoding the version %d payload as %T: %w", from, old, err)
		}
		next, err := f(old)
		if err != nil {
			return nil, err
		}
		out, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("error encoding the version %d payload from %T: %w", from+1, next, err)
		}
		return out, nil
	}}
}

// UpcastChain brings the stored payloads of one event type to its current
// version. JSONCodec keeps one per registered type; other codecs can use it
// the same way: Upcast the record's data, then decode the current version.
type UpcastChain struct {
	typ     string
	current int
	oldest  int
	steps   []func([]byte) ([]byte, error) // steps[i] upcasts from oldest+i
}

// NewUpcastChain returns the chain of event type typ, whose current version
// is current. The upcasters may come in any order, but together they must
// lead without a gap from the oldest of them to current: a hole in the
// chain would fail every event stored before it, so it is refused here,
// at start-up, rather than at the first read. Versions older than the
// oldest upcaster are refused at read time with ErrNoUpcaster.
func NewUpcastChain(typ string, current int, upcasters ...Upcaster) (*UpcastChain, error) {
	if current < 0 || current > MaxVersion {
		return nil, fmt.Errorf("event type %q: current version %d out of range [0, %d]", typ, current, MaxVersion)
	}
	ups := slices.Clone(upcasters)
	slices.SortFunc(ups, func(a, b Upcaster) int { return a.From - b.From })
	c := &UpcastChain{typ: typ, current: current, oldest: current}
	if len(ups) > 0 {
		c.oldest = ups[0].From
	}
	for i, u := range ups {
		switch {
		case u.Upcast == nil:
			return nil, fmt.Errorf("event type %q: upcaster from version %d has no Upcast function", typ, u.From)
		case u.From < 0 || u.From >= current:
			return nil, fmt.Errorf("event type %q: upcaster from version %d out of range: the current version is %d, so upcasters go from versions 0 to %d",
				typ, u.From, current, current-1)
		case i > 0 && u.From == ups[i-1].From:
			return nil, fmt.Errorf("event type %q: two upcasters from version %d", typ, u.From)
		case u.From != c.oldest+i:
			return nil, fmt.Errorf("event type %q: no upcaster from version %d: the chain from version %d to the current version %d has a gap",
				typ, c.oldest+i, c.oldest, current)
		}
		c.steps = append(c.steps, u.Upcast)
	}
	if n := len(ups); n > 0 && ups[n-1].From != current-1 {
		return nil, fmt.Errorf("event type %q: no upcaster from version %d: the chain from version %d must reach the current version %d",
			typ, ups[n-1].From+1, c.oldest, current)
	}
	return c, nil
}

// Current is the current version of the chain's type.
func (c *UpcastChain) Current() int { return c.current }

// Upcast returns data, stored at version, as a payload of the current
// version. It returns a *VersionError for a version it has no path from and
// an *UpcastError when an upcaster fails.
func (c *UpcastChain) Upcast(version int, data []byte) ([]byte, error) {
	switch {
	case version == c.current:
		return data, nil
	case version > c.current:
		return nil, &VersionError{Type: c.typ, Version: version, Current: c.current, Oldest: c.oldest, Err: ErrFutureVersion}
	case version < c.oldest:
		return nil, &VersionError{Type: c.typ, Version: version, Current: c.current, Oldest: c.oldest, Err: ErrNoUpcaster}
	}
	for v := version; v < c.current; v++ {
		next, err := c.steps[v-c.oldest](data)
		if err != nil {
			return nil, &UpcastError{Type: c.typ, From: v, Err: err}
		}
		data = next
	}
	return data, nil
}
