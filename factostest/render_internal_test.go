package factostest

import (
	"strings"
	"testing"

	"github.com/factos-go/factos/eventstore"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		want, got string
		diff      string
	}{
		{"equal", "a b c", "a b c", "  a|  b|  c"},
		{"changed", "a b c", "a x c", "  a|- b|+ x|  c"},
		{"inserted", "a c", "a b c", "  a|+ b|  c"},
		{"deleted", "a b c", "a c", "  a|- b|  c"},
		{"all new", "", "a b", "+ a|+ b"},
		{"all gone", "a b", "", "- a|- b"},
		{"moved", "a b c", "b c a", "- a|  b|  c|+ a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := diff(strings.Fields(tt.want), strings.Fields(tt.got))
			if want := strings.ReplaceAll(tt.diff, "|", "\n"); got != want {
				t.Errorf("diff:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	// Renderings too large to align are shown whole.
	big := make([]string, 2001)
	for i := range big {
		big[i] = "x"
	}
	if got := diff(big, big); !strings.HasPrefix(got, "want:\n  x\n") || !strings.Contains(got, "\ngot:\n  x") {
		t.Errorf("large diff starts %q", got[:min(len(got), 40)])
	}
}

// Payloads render canonically, so that equal stored values render alike
// whatever their key order or spacing, and different ones do not.
func TestEventItem(t *testing.T) {
	t.Parallel()
	render := func(data string, tags ...string) string {
		it := eventItem(eventstore.EventData{Type: "T", Version: 2, Tags: tags, Data: []byte(data)})
		return strings.Join(renderItems([]item{it}), "\n")
	}
	if a, b := render(`{"b":1,"a":[1,2]}`), render(`{ "a": [1, 2], "b": 1 }`); a != b {
		t.Errorf("equal JSON rendered differently:\n%s\n%s", a, b)
	}
	for _, other := range []string{`{"b":1.0,"a":[1,2]}`, `{"b":1,"a":[2,1]}`, `{"b":"1","a":[1,2]}`} {
		if render(`{"b":1,"a":[1,2]}`) == render(other) {
			t.Errorf("%s rendered like the original", other)
		}
	}
	// Renderings that must differ: one tag with a space against two tags,
	// bytes against the JSON string of the same text.
	if render(`{}`, "a b") == render(`{}`, "a", "b") {
		t.Error(`tags ["a b"] rendered like ["a" "b"]`)
	}
	if render(`"x"`) == render(`x`) {
		t.Error("the bytes x rendered like the JSON string \"x\"")
	}
	if got := render("not json", "x:1"); got != "[0] T v2 tags [x:1]\n    (bytes) \"not json\"" {
		t.Errorf("non-JSON payload rendered as %q", got)
	}
	if got := render(""); got != "[0] T v2 tags []\n    (empty payload)" {
		t.Errorf("empty payload rendered as %q", got)
	}
	md := eventItem(eventstore.EventData{Type: "T", Metadata: eventstore.Metadata{"k": "v"}, Data: []byte(`1`)})
	if md.oneLine() != `T v0 tags [] metadata {"k":"v"} 1` {
		t.Errorf("metadata rendered as %q", md.oneLine())
	}
}
