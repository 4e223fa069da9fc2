// Package bench measures the event store: throughput, latency, conflicts,
// retries and database round trips of dispatches under each lock strategy,
// side by side in one run so that their ratios hold on a noisy machine.
//
// A run is a list of scenarios (disjoint contexts, one hot context, a mix of
// both, stream-revision dispatch, growing history, an insert-only ceiling,
// catch-up reads beside writers, a tailing reader, the outbox, commit to
// effect through River, unordered and ordered, projections and commands through Temporal). Each scenario runs in cells: one client count and one
// strategy, each strategy in a database of its own. Strategies run back to
// back per client count, so a slow minute of the machine hits all of them.
// A measured window lasts Config.Duration and longer until it counted
// Config.MinCommands commands, so a loaded machine slows a run down rather
// than leaving cells with nothing measured.
//
// Run does the measuring and returns Results; WriteJSON, WriteMarkdown and
// WriteSVG render them. cmd/factos-bench is the command around it, and
// docs/benchmarks.md explains a run's numbers.
package bench
