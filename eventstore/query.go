package eventstore

import (
	"slices"
	"strings"
)

// Query selects events by type and tags. It is either "all events" or a list
// of items combined with OR. Within an item the types are combined with OR
// and the tags with AND; an item with no types matches any type and an item
// with no tags puts no constraint on tags. An item with neither matches every
// event.
//
// The zero Query has no items and matches nothing. Matches gives the same
// answers as the SQL the store runs; a property test holds the two together.
type Query struct {
	// All selects every event; Items is then ignored.
	All bool

	// Items are OR-combined.
	Items []QueryItem
}

// QueryItem is one alternative of a Query.
type QueryItem struct {
	// Types are OR-combined. Empty means any type.
	Types []string
	// Tags are AND-combined. Empty means no tag constraint.
	Tags []string
}

// AllEvents is the query that matches every event.
func AllEvents() Query { return Query{All: true} }

// NewQuery is a query of the given items.
func NewQuery(items ...QueryItem) Query { return Query{Items: items} }

// Types is a query item matching events of any of the given types.
func Types(types ...string) QueryItem { return QueryItem{Types: types} }

// Tags is a query item matching events carrying all of the given tags.
func Tags(tags ...string) QueryItem { return QueryItem{Tags: tags} }

// TypesAndTags is a query item matching events of one of types that carry
// every tag in tags.
func TypesAndTags(types []string, tags ...string) QueryItem {
	return QueryItem{Types: types, Tags: tags}
}

// Or adds items to the query.
func (q Query) Or(items ...QueryItem) Query {
	q.Items = append(slices.Clip(q.Items), items...)
	return q
}

// IsEmpty reports whether the query matches nothing.
func (q Query) IsEmpty() bool { return !q.All && len(q.Items) == 0 }

// MatchesAll reports whether the query matches every event, either because
// it is AllEvents or because one of its items has neither types nor tags.
func (q Query) MatchesAll() bool {
	if q.All {
		return true
	}
	for _, it := range q.Items {
		if len(it.Types) == 0 && len(it.Tags) == 0 {
			return true
		}
	}
	return false
}

// Matches reports whether an event of type typ with tags matches the query.
func (q Query) Matches(typ string, tags []string) bool {
	if q.All {
		return true
	}
	for _, it := range q.Items {
		if it.Matches(typ, tags) {
			return true
		}
	}
	return false
}

// Matches reports whether an event of type typ with tags matches the item.
func (it QueryItem) Matches(typ string, tags []string) bool {
	if len(it.Types) > 0 && !slices.Contains(it.Types, typ) {
		return false
	}
	for _, want := range it.Tags {
		if !slices.Contains(tags, want) {
			return false
		}
	}
	return true
}

// String renders the query for logs and errors.
func (q Query) String() string {
	if q.All {
		return "all"
	}
	if len(q.Items) == 0 {
		return "none"
	}
	parts := make([]string, len(q.Items))
	for i, it := range q.Items {
		parts[i] = "(types=" + strings.Join(it.Types, "|") + " tags=" + strings.Join(it.Tags, "&") + ")"
	}
	return strings.Join(parts, " OR ")
}

// normalized returns a copy with sorted, de-duplicated types and tags, and
// collapses the query to All when an item matches everything. Lock keys and
// SQL are derived from the normalized form so that equal queries written in
// different orders share keys and prepared statements.
func (q Query) normalized() Query {
	if q.MatchesAll() {
		return Query{All: true}
	}
	out := Query{Items: make([]QueryItem, len(q.Items))}
	for i, it := range q.Items {
		out.Items[i] = QueryItem{Types: sortedUnique(it.Types), Tags: sortedUnique(it.Tags)}
	}
	return out
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
