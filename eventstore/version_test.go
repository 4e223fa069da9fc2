package eventstore_test

import (
	"errors"
	"math"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

// The version column is an int4. A version up to MaxVersion round-trips; a
// larger one is refused with an *InvalidInputError naming the field and
// writes nothing, rather than being stored as a different number (found by
// FuzzValidateEvents).
func TestVersionRange(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		version int
		ok      bool
	}{
		{0, true},
		{1, true},
		{eventstore.MaxVersion, true},
		{eventstore.MaxVersion + 1, false},
		{1 << 32, false},
		{math.MaxInt64, false},
		{-1, false},
	}
	for _, tt := range tests {
		before := b.counts(t)
		res, err := b.store.Append(b.ctx, eventstore.AppendRequest{Stream: "versions", Events: []eventstore.EventData{{Type: "T", Version: tt.version}}})
		if !tt.ok {
			var inv *eventstore.InvalidInputError
			if !errors.As(err, &inv) || inv.Field != "events[0].version" || !errors.Is(err, eventstore.ErrInvalidInput) {
				t.Errorf("version %d: err = %v, want an *InvalidInputError naming events[0].version", tt.version, err)
			}
			if after := b.counts(t); after != before {
				t.Errorf("version %d: refused append wrote rows: %+v -> %+v", tt.version, before, after)
			}
			continue
		}
		if err != nil {
			t.Fatalf("version %d: %v", tt.version, err)
		}
		got, err := b.store.ReadPositions(b.ctx, res.Records[0].Position)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Version != tt.version {
			t.Errorf("version %d was stored as %d", tt.version, got[0].Version)
		}
	}
}
