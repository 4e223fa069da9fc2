package eventstore

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Codec converts an application's events to the store's form and back. The
// store treats Data as opaque bytes; the codec owns their format and their
// versions. Codecs must be pure and safe for concurrent use.
type Codec[E any] interface {
	// Encode returns the type, tags, version, metadata and bytes of event.
	Encode(event E) (EventData, error)

	// Decode turns a stored record back into an event. It returns an error
	// wrapping ErrUnknownEventType for types it does not know.
	Decode(rec RawRecord) (E, error)
}

// JSONCodec is a Codec for an event union E (usually an interface) whose
// members are registered with RegisterJSON and encoded with encoding/json.
type JSONCodec[E any] struct {
	byName map[string]jsonType[E]
	byType map[reflect.Type]string
}

type jsonType[E any] struct {
	version int
	encode  func(E) ([]string, []byte, error)
	decode  func([]byte) (E, error)
}

// NewJSONCodec returns an empty JSON codec for the event union E.
func NewJSONCodec[E any]() *JSONCodec[E] {
	return &JSONCodec[E]{byName: map[string]jsonType[E]{}, byType: map[reflect.Type]string{}}
}

// JSONType describes one registered event type.
type JSONType[T any] struct {
	// Name is the stored event type. Required.
	Name string
	// Version is stored with each event. Default 0.
	Version int
	// Tags derives the event's tags. Nil means no tags.
	Tags func(T) []string
}

// RegisterJSON registers the concrete event type T, a member of the union E,
// under desc.Name. It panics on a duplicate name or type, or if T is not
// assignable to E: those are programming errors found at start-up.
func RegisterJSON[E, T any](c *JSONCodec[E], desc JSONType[T]) {
	rt := reflect.TypeFor[T]()
	if _, ok := any(*new(T)).(E); !ok {
		panic(fmt.Sprintf("eventstore: %s is not a member of %s", rt, reflect.TypeFor[E]()))
	}
	if desc.Name == "" {
		panic(fmt.Sprintf("eventstore: empty event type name for %s", rt))
	}
	if _, dup := c.byName[desc.Name]; dup {
		panic(fmt.Sprintf("eventstore: event type %q registered twice", desc.Name))
	}
	if _, dup := c.byType[rt]; dup {
		panic(fmt.Sprintf("eventstore: Go type %s registered twice", rt))
	}
	c.byType[rt] = desc.Name
	c.byName[desc.Name] = jsonType[E]{
		version: desc.Version,
		encode: func(e E) ([]string, []byte, error) {
			t := any(e).(T)
			data, err := json.Marshal(t)
			if err != nil {
				return nil, nil, err
			}
			var tags []string
			if desc.Tags != nil {
				tags = desc.Tags(t)
			}
			return tags, data, nil
		},
		decode: func(data []byte) (E, error) {
			var t T
			if err := json.Unmarshal(data, &t); err != nil {
				var zero E
				return zero, err
			}
			e, _ := any(t).(E)
			return e, nil
		},
	}
}

// Encode implements Codec.
func (c *JSONCodec[E]) Encode(event E) (EventData, error) {
	name, ok := c.byType[reflect.TypeOf(event)]
	if !ok {
		return EventData{}, fmt.Errorf("%w: Go type %T is not registered", ErrUnknownEventType, event)
	}
	jt := c.byName[name]
	tags, data, err := jt.encode(event)
	if err != nil {
		return EventData{}, err
	}
	return EventData{Type: name, Version: jt.version, Tags: tags, Data: data}, nil
}

// Decode implements Codec.
func (c *JSONCodec[E]) Decode(rec RawRecord) (E, error) {
	jt, ok := c.byName[rec.Type]
	if !ok {
		var zero E
		return zero, fmt.Errorf("%w: %q", ErrUnknownEventType, rec.Type)
	}
	return jt.decode(rec.Data)
}

// Types lists the registered event type names.
func (c *JSONCodec[E]) Types() []string {
	out := make([]string, 0, len(c.byName))
	for n := range c.byName {
		out = append(out, n)
	}
	return out
}
