package eventstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// A customer's registration, at its third version. Its payloads in
// testdata/upcast were stored by each earlier version:
//
//	v1  {"customer_id", "name"}                       one name
//	v2  {"customer_id", "full_name"}                  renamed
//	v3  {"customer_id", "given_name", "family_name"}  split (current)
//	v4  {"customer_id", "names": [...]}               a future release's
type CustomerRegistered struct {
	CustomerID string `json:"customer_id"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
}

type customerEvent interface{ isCustomerEvent() }

func (CustomerRegistered) isCustomerEvent() {}

// The frozen shapes of the earlier versions.
type customerRegisteredV1 struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
}

type customerRegisteredV2 struct {
	CustomerID string `json:"customer_id"`
	FullName   string `json:"full_name"`
}

// customerUpcasters are given out of order on purpose: the chain sorts them.
var customerUpcasters = []eventstore.Upcaster{
	eventstore.UpcastJSON(2, func(v2 customerRegisteredV2) (CustomerRegistered, error) {
		given, family, _ := strings.Cut(v2.FullName, " ")
		return CustomerRegistered{CustomerID: v2.CustomerID, GivenName: given, FamilyName: family}, nil
	}),
	eventstore.UpcastJSON(1, func(v1 customerRegisteredV1) (customerRegisteredV2, error) {
		return customerRegisteredV2{CustomerID: v1.CustomerID, FullName: v1.Name}, nil
	}),
}

func newCustomerCodec() *eventstore.JSONCodec[customerEvent] {
	c := eventstore.NewJSONCodec[customerEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[CustomerRegistered]{
		Name: "CustomerRegistered", Version: 3, Upcasters: customerUpcasters,
		Tags: func(e CustomerRegistered) []string { return []string{"customer:" + e.CustomerID} },
	})
	return c
}

func customerPayload(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "upcast", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var ada = CustomerRegistered{CustomerID: "c-1", GivenName: "Ada", FamilyName: "Lovelace"}

// Payloads stored by every earlier version decode to the current Go type;
// new events are written at the current version.
func TestJSONCodecUpcastsStoredPayloads(t *testing.T) {
	t.Parallel()
	codec := newCustomerCodec()
	for _, tt := range []struct {
		file    string
		version int
	}{
		{"customer_registered.v1.json", 1},
		{"customer_registered.v2.json", 2},
		{"customer_registered.v3.json", 3},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			ev, err := codec.Decode(eventstore.RawRecord{Type: "CustomerRegistered", Version: tt.version, Data: customerPayload(t, tt.file)})
			if err != nil {
				t.Fatal(err)
			}
			if ev != ada {
				t.Errorf("decoded %#v, want %#v", ev, ada)
			}
		})
	}

	data, err := codec.Encode(ada)
	if err != nil {
		t.Fatal(err)
	}
	if data.Version != 3 || string(data.Data)+"\n" != string(customerPayload(t, "customer_registered.v3.json")) {
		t.Errorf("encoded at version %d as %s, want version 3 as testdata's v3 payload", data.Version, data.Data)
	}
	if v, ok := codec.CurrentVersion("CustomerRegistered"); !ok || v != 3 {
		t.Errorf("CurrentVersion = %d, %v; want 3, true", v, ok)
	}
	if _, ok := codec.CurrentVersion("Unknown"); ok {
		t.Error("CurrentVersion of an unregistered type reported ok")
	}
}

// A payload the codec cannot bring to its current version fails with a
// typed error that says why, and never with a half-upgraded event.
func TestJSONCodecVersionErrors(t *testing.T) {
	t.Parallel()
	codec := newCustomerCodec()
	tests := []struct {
		name    string
		version int
		file    string
		is      error
		message string
		check   func(t *testing.T, err error)
	}{
		{
			name: "future version", version: 4, file: "customer_registered.v4.json", is: eventstore.ErrFutureVersion,
			message: `event "CustomerRegistered" version 4 is newer than the codec's current version 3 (written by a newer release of the application?)`,
			check: func(t *testing.T, err error) {
				var ve *eventstore.VersionError
				if !errors.As(err, &ve) || ve.Type != "CustomerRegistered" || ve.Version != 4 || ve.Current != 3 {
					t.Errorf("err = %#v, want a *VersionError for version 4 of 3", err)
				}
			},
		},
		{
			name: "older than every upcaster", version: 0, file: "customer_registered.v1.json", is: eventstore.ErrNoUpcaster,
			message: `event "CustomerRegistered" version 0 cannot be upcast to the current version 3: no upcaster from version 0 (the upcasters start at version 1)`,
			check: func(t *testing.T, err error) {
				var ve *eventstore.VersionError
				if !errors.As(err, &ve) || ve.Version != 0 || ve.Oldest != 1 {
					t.Errorf("err = %#v, want a *VersionError for version 0 with Oldest 1", err)
				}
			},
		},
		{
			name: "malformed old payload", version: 1, file: "customer_registered.v1.malformed.json",
			message: `error upcasting event "CustomerRegistered" from version 1 to 2: error decoding the version 1 payload as eventstore_test.customerRegisteredV1: json: cannot unmarshal array into Go struct field customerRegisteredV1.name of type string`,
			check: func(t *testing.T, err error) {
				var ue *eventstore.UpcastError
				if !errors.As(err, &ue) || ue.Type != "CustomerRegistered" || ue.From != 1 {
					t.Errorf("err = %#v, want an *UpcastError from version 1", err)
				}
				if errors.Is(err, eventstore.ErrFutureVersion) || errors.Is(err, eventstore.ErrNoUpcaster) {
					t.Errorf("a failing upcaster reported as a version error: %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := codec.Decode(eventstore.RawRecord{Type: "CustomerRegistered", Version: tt.version, Data: customerPayload(t, tt.file)})
			if err == nil {
				t.Fatalf("decoded %#v, want an error", ev)
			}
			if ev != nil {
				t.Errorf("returned %#v with the error, want nil", ev)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if err.Error() != tt.message {
				t.Errorf("message:\n got  %s\n want %s", err, tt.message)
			}
			tt.check(t, err)
		})
	}

	// A type registered without upcasters reads only its current version.
	c := eventstore.NewJSONCodec[customerEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[CustomerRegistered]{Name: "CustomerRegistered", Version: 1})
	_, err := c.Decode(eventstore.RawRecord{Type: "CustomerRegistered", Version: 0, Data: []byte(`{}`)})
	want := `event "CustomerRegistered" version 0 cannot be upcast to the current version 1: no upcaster from version 0 (the type has no upcasters)`
	if !errors.Is(err, eventstore.ErrNoUpcaster) || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// A chain with a hole would fail every event stored before the hole, so it
// is refused when the type is registered, not at the first read.
func TestUpcastChainValidation(t *testing.T) {
	t.Parallel()
	up := func(from int) eventstore.Upcaster {
		return eventstore.Upcaster{From: from, Upcast: func(b []byte) ([]byte, error) { return b, nil }}
	}
	tests := []struct {
		name      string
		current   int
		upcasters []eventstore.Upcaster
		err       string // "" for a valid chain
	}{
		{"no upcasters", 4, nil, ""},
		{"full chain out of order", 3, []eventstore.Upcaster{up(2), up(0), up(1)}, ""},
		{"chain from a later version", 3, []eventstore.Upcaster{up(1), up(2)}, ""},
		{"gap", 4, []eventstore.Upcaster{up(1), up(3)}, `event type "T": no upcaster from version 2: the chain from version 1 to the current version 4 has a gap`},
		{"short of current", 3, []eventstore.Upcaster{up(0), up(1)}, `event type "T": no upcaster from version 2: the chain from version 0 must reach the current version 3`},
		{"duplicate", 3, []eventstore.Upcaster{up(1), up(2), up(1)}, `event type "T": two upcasters from version 1`},
		{"from the current version", 2, []eventstore.Upcaster{up(1), up(2)}, `event type "T": upcaster from version 2 out of range: the current version is 2, so upcasters go from versions 0 to 1`},
		{"negative from", 1, []eventstore.Upcaster{up(-1), up(0)}, `event type "T": upcaster from version -1 out of range: the current version is 1, so upcasters go from versions 0 to 0`},
		{"nil function", 2, []eventstore.Upcaster{{From: 1}}, `event type "T": upcaster from version 1 has no Upcast function`},
		{"negative current", -1, nil, `event type "T": current version -1 out of range [0, 2147483647]`},
		{"current above the column", eventstore.MaxVersion + 1, nil, `event type "T": current version 2147483648 out of range [0, 2147483647]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := eventstore.NewUpcastChain("T", tt.current, tt.upcasters...)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("valid chain refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("err = %v, want %s", err, tt.err)
			}
			// RegisterJSON refuses the same chain at start-up.
			defer func() {
				if p := recover(); p != "eventstore: "+tt.err {
					t.Errorf("RegisterJSON panicked with %v, want the chain's error", p)
				}
			}()
			eventstore.RegisterJSON(eventstore.NewJSONCodec[customerEvent](), eventstore.JSONType[CustomerRegistered]{
				Name: "T", Version: tt.current, Upcasters: tt.upcasters})
		})
	}
}

// Through a real store: a context holding payloads of every version is
// decoded at the current version by Dispatch and by Project, and a payload
// from a future release fails the dispatch with a *DecodeError wrapping the
// *VersionError, writing nothing.
func TestStoreDecodesUpcastHistory(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	codec := newCustomerCodec()
	appendVersion := func(version int, file string) {
		t.Helper()
		_, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "customer-c-1", Events: []eventstore.EventData{
			{Type: "CustomerRegistered", Version: version, Tags: []string{"customer:c-1"}, Data: customerPayload(t, file)},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	appendVersion(1, "customer_registered.v1.json")
	appendVersion(2, "customer_registered.v2.json")
	appendVersion(3, "customer_registered.v3.json")

	// A command that records how many registrations it saw, all as the
	// current type.
	type count struct{}
	h := eventstore.Handler[count, customerEvent, []CustomerRegistered]{
		Codec:  codec,
		Stream: func(count) string { return "customer-c-1" },
		Query:  func(count) eventstore.Query { return eventstore.NewQuery(eventstore.Tags("customer:c-1")) },
		Decider: eventstore.Decider[count, customerEvent, []CustomerRegistered]{
			Evolve: func(s []CustomerRegistered, e customerEvent) []CustomerRegistered {
				return append(s, e.(CustomerRegistered))
			},
			Decide: func(s []CustomerRegistered, _ count) ([]customerEvent, error) {
				for i, c := range s {
					if c != ada {
						t.Errorf("context[%d] decoded as %#v, want %#v", i, c, ada)
					}
				}
				if len(s) != 3 {
					t.Errorf("context has %d registrations, want 3", len(s))
				}
				return nil, nil
			},
		},
	}
	if _, err := eventstore.Dispatch(b.ctx, b.store, h, count{}, nil); err != nil {
		t.Fatal(err)
	}
	view := eventstore.View[customerEvent, int]{Evolve: func(n int, r eventstore.Record[customerEvent]) int {
		if r.Event != ada {
			t.Errorf("view got %#v at position %d", r.Event, r.Position)
		}
		return n + 1
	}}
	n, _, err := eventstore.Project(b.ctx, b.store, codec, eventstore.NewQuery(eventstore.Tags("customer:c-1")), view)
	if err != nil || n != 3 {
		t.Fatalf("Project = %d, %v; want 3 records", n, err)
	}

	appendVersion(4, "customer_registered.v4.json")
	before := b.counts(t)
	_, err = eventstore.Dispatch(b.ctx, b.store, h, count{}, nil)
	var dec *eventstore.DecodeError
	var ve *eventstore.VersionError
	if !errors.As(err, &dec) || dec.Version != 4 || dec.Type != "CustomerRegistered" || !errors.Is(err, eventstore.ErrDecode) ||
		!errors.As(err, &ve) || !errors.Is(err, eventstore.ErrFutureVersion) {
		t.Fatalf("err = %v, want a *DecodeError wrapping a future *VersionError", err)
	}
	want := `error decoding event "CustomerRegistered" (version 4) at position 4: event "CustomerRegistered" version 4 is newer than the codec's current version 3 (written by a newer release of the application?)`
	if err.Error() != want {
		t.Errorf("message:\n got  %s\n want %s", err, want)
	}
	if after := b.counts(t); after != before {
		t.Errorf("a failed decode wrote rows: %+v -> %+v", before, after)
	}
}
