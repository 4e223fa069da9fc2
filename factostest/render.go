package factostest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/factos-go/factos/eventstore"
)

// This file renders what the kit compares (events, effects, views) as
// text, and diffs two renderings line by line.
//
// Events and effects are compared as the store and River hold them, by
// their rendering: an event by its type, version, tags, metadata and
// payload as its codec encodes it; an effect by its kind, key and args as
// JSON. A JSON payload is rendered canonically (keys sorted, indented), so
// two renderings are equal exactly when the stored values are, and a
// failure shows the difference and nothing else.

// item is one rendered event or effect: a header line and a payload,
// indented for diffs and compact for lists.
type item struct {
	header  string
	payload []string
	compact string
}

func newItem(header string, data []byte) item {
	it := item{header: header}
	v, ok := canonical(data)
	switch {
	case len(data) == 0:
		it.payload, it.compact = []string{"(empty payload)"}, "(empty payload)"
	case !ok:
		// Marked as bytes: quoted alone they would read like the JSON
		// string holding the same text, and `"x"` and `x` would render
		// alike.
		it.payload = []string{fmt.Sprintf("(bytes) %q", data)}
		it.compact = it.payload[0]
	default:
		indented, _ := json.MarshalIndent(v, "", "  ")
		compact, _ := json.Marshal(v)
		it.payload, it.compact = strings.Split(string(indented), "\n"), string(compact)
	}
	return it
}

// canonical decodes a JSON payload so that it renders with sorted keys. It
// keeps numbers as written: 1 and 1.0 are different bytes.
func canonical(data []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// eventItem renders an event as the store holds it.
func eventItem(d eventstore.EventData) item {
	h := fmt.Sprintf("%s v%d tags %s", d.Type, d.Version, tagList(d.Tags))
	if len(d.Metadata) > 0 {
		h += " metadata " + compactJSON(d.Metadata)
	}
	return newItem(h, d.Data)
}

// effectItem renders an effect as its River job carries it, with its
// ordering key when it has one. It fails for
// args that cannot be encoded, as the reaction would.
func effectItem(e eventstore.PlannedEffect) (item, error) {
	args, err := json.Marshal(e.Args)
	if err != nil {
		return item{}, err
	}
	h := fmt.Sprintf("%s key %q", e.Kind, e.Key)
	if e.OrderingKey != "" {
		h += fmt.Sprintf(" ordering key %q", e.OrderingKey)
	}
	return newItem(h, args), nil
}

// oneLine renders the item on one line, for lists of facts.
func (it item) oneLine() string { return it.header + " " + it.compact }

// renderItems renders a list of items for a diff: a numbered header per
// item, its payload indented below it.
func renderItems(items []item) []string {
	if len(items) == 0 {
		return []string{"(none)"}
	}
	var lines []string
	for i, it := range items {
		lines = append(lines, fmt.Sprintf("[%d] %s", i, it.header))
		for _, l := range it.payload {
			lines = append(lines, "    "+l)
		}
	}
	return lines
}

// describe renders a Go value on one line: its type and its JSON.
func describe(v any) string {
	return fmt.Sprintf("%T %s", v, compactJSON(v))
}

// valueLines renders a Go value over several lines, as indented JSON when
// it has a JSON form and with %#v otherwise.
func valueLines(v any) []string {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return goLines(v)
	}
	return strings.Split(string(out), "\n")
}

// goLines renders a Go value with %#v, which shows what JSON does not
// (unexported fields, nil against empty, time zones).
func goLines(v any) []string {
	return []string{fmt.Sprintf("%#v", v)}
}

func compactJSON(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(out)
}

func tagList(tags []string) string {
	out := make([]string, len(tags))
	for i, t := range tags {
		// Quoted when a plain rendering would be ambiguous: tags with a
		// space or a bracket ("a b" is one tag, not two), or empty.
		if t == "" || strings.ContainsAny(t, " []\"") || strconv.Quote(t) != `"`+t+`"` {
			t = strconv.Quote(t)
		}
		out[i] = t
	}
	return "[" + strings.Join(out, " ") + "]"
}

// maxDiffCells bounds the line diff's table; larger renderings are shown
// whole instead.
const maxDiffCells = 4_000_000

// diff returns a line diff of two renderings: lines only in want start with
// "-", lines only in got with "+", common lines with a space.
func diff(want, got []string) string {
	if len(want)*len(got) > maxDiffCells {
		return "want:\n" + indent(want, "  ") + "\ngot:\n" + indent(got, "  ")
	}
	// Longest common subsequence, by dynamic programming from the ends.
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			b.WriteString("  " + want[i] + "\n")
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			b.WriteString("- " + want[i] + "\n")
			i++
		default:
			b.WriteString("+ " + got[j] + "\n")
			j++
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func indent(lines []string, prefix string) string {
	return prefix + strings.Join(lines, "\n"+prefix)
}

// sameLines reports whether two renderings are equal.
func sameLines(a, b []string) bool { return slices.Equal(a, b) }
