package eventstore_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/factos-go/factos/eventstore"
)

// PersonNamed is at version 2: version 1 stored one "name"; version 2
// splits it. Old payloads stay as they were stored and are upcast on read.
type PersonNamed struct {
	Given  string `json:"given"`
	Family string `json:"family"`
}

// personNamedV1 is the frozen shape of version 1.
type personNamedV1 struct {
	Name string `json:"name"`
}

// Evolve an event's payload without rewriting history: declare the current
// version and an upcaster from each older one.
func ExampleUpcastJSON() {
	codec := eventstore.NewJSONCodec[any]()
	eventstore.RegisterJSON(codec, eventstore.JSONType[PersonNamed]{
		Name:    "PersonNamed",
		Version: 2,
		Upcasters: []eventstore.Upcaster{
			eventstore.UpcastJSON(1, func(old personNamedV1) (PersonNamed, error) {
				given, family, _ := strings.Cut(old.Name, " ")
				return PersonNamed{Given: given, Family: family}, nil
			}),
		},
	})

	// A payload stored by the release that wrote version 1.
	old, err := codec.Decode(eventstore.RawRecord{Type: "PersonNamed", Version: 1, Data: []byte(`{"name":"Grace Hopper"}`)})
	fmt.Printf("%#v %v\n", old, err)

	// New events are written at the current version.
	data, _ := codec.Encode(PersonNamed{Given: "Ada", Family: "Lovelace"})
	fmt.Println(data.Version, string(data.Data))

	// A payload from a newer release is refused with a typed error.
	_, err = codec.Decode(eventstore.RawRecord{Type: "PersonNamed", Version: 3, Data: []byte(`{}`)})
	fmt.Println(errors.Is(err, eventstore.ErrFutureVersion), err)
	// Output:
	// eventstore_test.PersonNamed{Given:"Grace", Family:"Hopper"} <nil>
	// 2 {"given":"Ada","family":"Lovelace"}
	// true event "PersonNamed" version 3 is newer than the codec's current version 2 (written by a newer release of the application?)
}
