package eventstore

// AppendCondition guards an append: it fails if any event matching Query was
// appended after position After. A decision made from events read up to
// After stays valid exactly as long as the condition holds.
type AppendCondition struct {
	// Query is the decision's consistency context.
	Query Query

	// After is the highest position the decision observed. It may be higher
	// than the last matching event. Nil means the decision observed nothing,
	// and any matching event fails the append.
	After *Position
}

// FailIfEventsMatch is the condition "no event matching query after
// position after". Pass a nil after when the decision saw no event.
func FailIfEventsMatch(query Query, after *Position) *AppendCondition {
	return &AppendCondition{Query: query, After: after}
}

// Revision returns a pointer to n, for AppendRequest.ExpectedRevision.
// Revision(0) requires that the stream has no events yet.
func Revision(n int64) *int64 { return &n }
