// Package projections builds views from the event log: read models kept in
// the application's own tables, each updated by exactly one runner across
// every process, with a checkpoint committed in the same transaction as
// the view's writes.
//
// # Projections
//
// A Projection has a name, a query over the log, a codec, and an Apply
// function that receives a batch of decoded records, in position order,
// and the pgx.Tx in which to write the view:
//
//	reg := projections.NewRegistry()
//	err := projections.AddProjection(reg, projections.Projection[tickets.Event]{
//		Name:  "concert_sales",
//		Query: eventstore.NewQuery(eventstore.Types("ConcertScheduled", "TicketSold")),
//		Codec: codec,
//		Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[tickets.Event]) error { ... },
//		Reset: func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error { ... },
//	})
//	client, err := projections.New(store, reg, &projections.Config{Metrics: m})
//	err = client.Start(ctx)
//
// # Guarantees
//
// Each event the query matches is applied exactly once, in position order:
// the runner reads pages after its checkpoint with Store.ReadAfter (which
// never skips an event that commits late with a lower position), and
// applies each page in one transaction that locks the checkpoint row
// first, checks that it still holds the position and generation the page
// was read after, writes the view, and moves the checkpoint. Exactly once
// holds for what Apply writes through that transaction, in the same
// database; anything else Apply does (an HTTP call, another database) is
// an effect, which may run again when a batch is retried: plan effects
// with a reactor instead.
//
// # One runner per projection
//
// A projection runs in the one process that holds its lease, a PostgreSQL
// session advisory lock on a connection of the process's own. The others
// try the free leases every LeaseInterval; when the holder dies its
// session ends, and another process takes over within about that long.
// Each process also holds a shared candidate lock per projection it
// registers; a process takes a free lease when no other candidate of it
// runs fewer projections, and hands one back when another runs two fewer,
// so projections spread over the replicas that register them. Even if two
// runners overlap, the checkpoint's check lets only one of them commit a
// given batch.
//
// # Waking up
//
// One watcher per process runs one small query every PollInterval (25ms by
// default) while a runner of the process is active: the position
// sequence's value and the sum of the checkpoint rows' generations. A
// change wakes the runners. Nothing is added to the dispatch path: no
// trigger, no NOTIFY (which takes a cluster-wide lock at commit).
//
// # Failures
//
// When Apply fails or panics, or a record cannot be decoded, the batch
// rolls back; the runner narrows the batch down to the failing event,
// applies the ones before it, and retries the failing one with exponential
// backoff (RetryMin to RetryMax), forever. The checkpoint row records the failing
// position, the error, the attempts and the next attempt: Status reports
// the projection as StateStuck, the metrics as factos_projection_stuck,
// and WaitFor's timeout error says so. The runner never moves past a
// failing event by itself; Skip does, on an operator's word, and records
// who skipped which event, when, why and with which error.
//
// # Reset and rebuild
//
// Reset moves the checkpoint back (to 0 or a given position) and calls the
// projection's Reset function, which clears what the view derived from the
// later events, in one transaction; Rebuild also waits until the view has
// caught up. Both are safe while runners run: every batch locks the
// checkpoint row first, so a batch either commits before the reset (and
// the reset clears it) or finds a new generation and rolls back. A
// projection without a Reset function cannot be reset (ErrNoReset).
//
// # Read your writes
//
// WaitFor(ctx, name, position) returns once the projection's checkpoint
// has reached position, for example the last position of a dispatch's
// Result.Records: the view then includes that event. In the process that
// runs the projection it is woken by the runner; elsewhere it reads the
// checkpoint every WaitPollInterval, one query per projection however many
// callers wait. Before it returns it reads the checkpoint row once more,
// since a reset elsewhere may have moved it back. Past its deadline it
// returns a *WaitTimeoutError.
//
// # Operating
//
// NewMetrics exports factos_projection_checkpoint, factos_projection_lag_events,
// factos_projection_lag_seconds, batches, events, errors and batch
// durations. The worker binary runs the projections a domain registers,
// and has `worker projections status`, `reset`, `rebuild` and `skip`.
// docs/projections.md says more.
package projections
