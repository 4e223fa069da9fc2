package eventstore

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Position is an event's place in the global order of the log. Positions are
// unique and increase with every append; gaps are allowed (a rolled-back
// append burns its positions). The first event has position 1, so the zero
// Position means "before everything".
type Position int64

// Metadata is free-form context recorded with an event, such as correlation
// and causation ids. It is stored as a JSON object of strings.
type Metadata map[string]string

// EventData is an event as the store sees it before it is written: a type,
// tags, a version and opaque bytes. A Codec turns application events into
// EventData and back.
type EventData struct {
	// ID identifies the event. The zero value asks the store to assign a
	// time-ordered UUID (version 7).
	ID uuid.UUID

	// Type names the event, for example "TicketSold". Required.
	Type string

	// Version is the schema version of Data, for the codec's use. Default 0.
	Version int

	// Tags place the event in consistency contexts, for example
	// "concert:42" or "username:ada". Queries select events by tags.
	Tags []string

	// Metadata is stored with the event. Dispatch options may add to it.
	Metadata Metadata

	// Data is the encoded event, opaque to the store.
	Data []byte
}

// RawRecord is a committed event as stored, before decoding.
type RawRecord struct {
	ID         uuid.UUID
	Stream     string
	Revision   int64
	Position   Position
	Type       string
	Version    int
	Tags       []string
	Metadata   Metadata
	RecordedAt time.Time
	Data       []byte
}

// Record is a committed event with its decoded application value.
type Record[E any] struct {
	RawRecord
	Event E
}

// HasTag reports whether the record carries tag.
func (r *RawRecord) HasTag(tag string) bool {
	for _, t := range r.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// encodeMetadata renders metadata as a JSON object. Validation has already
// refused what JSON cannot carry faithfully, so Marshal cannot fail.
func encodeMetadata(md Metadata) string {
	if len(md) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(map[string]string(md))
	return string(b)
}
