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
	// wrapping ErrUnknownEventType for types it does not know, and a
	// *VersionError for a version it cannot bring to the current one.
	Decode(rec RawRecord) (E, error)
}

// JSONCodec is a Codec for an event union E (usually an interface) whose
// members are registered with RegisterJSON and encoded with encoding/json.
//
// Each registered type has a current version: new events are written at
// it, and stored payloads of older versions are upcast to it (see
// JSONType.Upcasters) before they are decoded, so a decoded event is always
// of the current Go type and history is never rewritten.
type JSONCodec[E any] struct {
	byName map[string]jsonType[E]
	byType map[reflect.Type]string
}

type jsonType[E any] struct {
	chain  *UpcastChain
	encode func(E) ([]string, []byte, error)
	decode func([]byte) (E, error)
}

// NewJSONCodec returns an empty JSON codec for the event union E.
func NewJSONCodec[E any]() *JSONCodec[E] {
	return &JSONCodec[E]{byName: map[string]jsonType[E]{}, byType: map[reflect.Type]string{}}
}

// JSONType describes one registered event type.
type JSONType[T any] struct {
	// Name is the stored event type. Required.
	Name string
	// Version is the current version of T's payload: new events are
	// written at it, and stored events of older versions are upcast to it.
	// Raise it, with an upcaster from the previous version, whenever the
	// payload changes in a way the previous version's bytes would not
	// decode into correctly. Default 0.
	Version int
	// Tags derives the event's tags. Nil means no tags.
	Tags func(T) []string
	// Upcasters upgrade payloads stored at older versions, one version
	// each; together they must lead without a gap from the oldest of them
	// to Version (see NewUpcastChain). A stored version older than every
	// upcaster, or newer than Version, fails to decode with a
	// *VersionError. Default: none, so only Version decodes.
	Upcasters []Upcaster
}

// RegisterJSON registers the concrete event type T, a member of the union E,
// under desc.Name. It panics on a duplicate name or type, if T is not
// assignable to E, or on an invalid version or upcaster chain: those are
// programming errors found at start-up.
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
	chain, err := NewUpcastChain(desc.Name, desc.Version, desc.Upcasters...)
	if err != nil {
		panic("eventstore: " + err.Error())
	}
	c.byType[rt] = desc.Name
	c.byName[desc.Name] = jsonType[E]{
		chain: chain,
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
	return EventData{Type: name, Version: jt.chain.Current(), Tags: tags, Data: data}, nil
}

// Decode implements Codec. A payload stored at an older version is upcast
// to the current version first.
func (c *JSONCodec[E]) Decode(rec RawRecord) (E, error) {
	var zero E
	jt, ok := c.byName[rec.Type]
	if !ok {
		return zero, fmt.Errorf("%w: %q", ErrUnknownEventType, rec.Type)
	}
	data, err := jt.chain.Upcast(rec.Version, rec.Data)
	if err != nil {
		return zero, err
	}
	return jt.decode(data)
}

// CurrentVersion returns the current version of the registered type name.
func (c *JSONCodec[E]) CurrentVersion(name string) (int, bool) {
	jt, ok := c.byName[name]
	if !ok {
		return 0, false
	}
	return jt.chain.Current(), true
}

// Types lists the registered event type names.
func (c *JSONCodec[E]) Types() []string {
	out := make([]string, 0, len(c.byName))
	for n := range c.byName {
		out = append(out, n)
	}
	return out
}
