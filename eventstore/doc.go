// Package eventstore is an append-only PostgreSQL event log with
// context-consistent dispatch: a command's decision is appended only if no
// fact it depended on changed while it was being made.
//
// # Model
//
// Events carry a type, tags and opaque bytes owned by the application's
// Codec. A Query selects events: all of them, or items combined with OR;
// within an item types are OR-ed and tags AND-ed. A Decider folds the
// events matching a command's query into a state (Evolve) and decides the
// new events (Decide). A View is a pure fold for read models, and a
// ReactFunc plans effects (PlannedEffect) for a committed record.
//
// Deciders, views, reactors and codecs must be pure: a dispatch may run its
// decider more than once, and only the attempt that commits counts.
//
// # Dispatch
//
// Dispatch runs a command through a Handler in one transaction: it takes
// the locks of the command's context, reads and folds the context, decides,
// appends the decided events and their tags, runs the configured hooks
// (the outbox inserts River jobs there) and commits. Transient conflicts are
// retried with jittered backoff. A Handler without a Query dispatches by
// stream revision instead: the stream's own events are the context.
//
//	store, _ := eventstore.New(pool, nil)
//	res, err := eventstore.Dispatch(ctx, store, tickets.BuyTicketHandler(codec),
//		tickets.BuyTicket{ConcertID: "c1", BuyerID: "ada"}, nil)
//	switch {
//	case errors.Is(err, tickets.ErrSoldOut): // the decider's domain error
//	case errors.Is(err, eventstore.ErrConflict): // retries exhausted
//	}
//
// For decisions made outside the store, Read returns a context with the
// position it observed and Append takes FailIfEventsMatch(query, after).
//
// # Lock strategies
//
// LockKeys (the default) derives sorted transaction-scoped advisory locks
// from the query and from the events written, so commands on unrelated
// contexts never wait for each other; a dispatch holds at most
// Config.MaxLockKeys of them, taking coarser keys past that. LockTable (one
// table lock per dispatch) is kept as a measured baseline. Both pass the
// same concurrency suite. The first store to use a database records its
// strategy there, and a store configured with another is refused
// (ErrStrategyMismatch; SetLockStrategy changes it, with every writer
// stopped). docs/consistency.md gives the key derivation and the argument
// for why it keeps the guarantee, and why SERIALIZABLE isolation does not.
//
// A dispatch takes two round trips when its hooks need none of their own:
// BEGIN, the locks and the reads in one batch, then the insert and COMMIT
// in another.
//
// # Reads
//
// Read, ReadStream, ReadPositions and ReadAfter. ReadAfter is a catch-up
// read: called repeatedly with Page.Next it returns every event exactly once
// in position order, even though transactions commit out of position order.
// Its barrier holds the scope's locks only while it reads the position
// sequence, and tries them before it waits for them, so writers never queue
// behind a reader that waits; a caught-up reader takes no lock at all.
//
// # Event versions
//
// A Codec owns its payloads' versions. JSONCodec declares each type's
// current version (JSONType.Version): new events are written at it, and a
// payload stored at an older version is upgraded by a chain of Upcasters,
// one version per step (UpcastJSON maps a frozen old shape to the next),
// before it is decoded, so deciders, views and reactors only ever see the
// current Go type and history is never rewritten. A version newer than the
// codec's, or older than every upcaster, fails with a *VersionError
// (ErrFutureVersion, ErrNoUpcaster); a failing upcaster with an
// *UpcastError; the store wraps both in a *DecodeError. docs/modelling.md
// walks through an evolution.
//
// # Errors
//
// Every error matches one sentinel with errors.Is: ErrRejected
// (*RejectedError, which unwraps to the decider's error), ErrConflict
// (*ConflictError), ErrDecode (*DecodeError), ErrEncode (*EncodeError),
// ErrInvalidInput (*InvalidInputError, naming the field; a command id
// already used by another command is a *CommandIDReusedError, which also
// matches ErrCommandIDReused) or ErrStore
// (*StoreError), or, for a store configured with another lock strategy than
// its database records, ErrStrategyMismatch (*StrategyMismatchError). On any
// error nothing was written, except a *StoreError with CommitUnknown set
// (COMMIT was sent and no answer came): a retry with the same
// DispatchOpts.CommandID is then safe.
//
// # Tracing
//
// Every dispatch and append is a span (factos.dispatch or factos.append:
// strategy, stream, command id, attempts, positions, outcome) from
// Config.TracerProvider, OpenTelemetry's global provider by default, which
// is a no-op until the application installs one. When the dispatch runs in
// a trace, the W3C trace context (MetadataTraceParent) is written into the
// appended events' metadata, so what reacts to them later can continue or
// link to the command's trace (ContextFromMetadata, SpanContextFromMetadata).
package eventstore
