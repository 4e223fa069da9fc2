// Package activities lets Temporal workflows send commands to the event
// store, exactly once per command id.
//
// A Registry binds command names to eventstore handlers (Register is
// generic, so handlers stay typed). The dispatch activity (DispatchActivity)
// decodes the command's JSON payload strictly, dispatches it with the
// workflow's command id, and records the workflow id, run id, activity id
// and command id as correlation and causation metadata on the appended
// events.
//
// # Exactly once
//
// Activities run at least once: an attempt whose dispatch committed but
// whose completion was lost is retried. The command id is stored under a
// unique constraint in the dispatch transaction, so the retry appends
// nothing and answers with the first attempt's records (Result.Duplicate).
// The id must be deterministic: NewCommandID records a generated one in the
// workflow's history, and CommandIDFor derives one from the workflow id and
// a key. Run ids and activity ids are not safe keys: a reset changes the
// run id.
//
// # Errors
//
// The activity returns *temporal.ApplicationError values themselves (never
// wrapped, since only the top-level error decides retries). A domain
// rejection is non-retryable, typed by the domain error's registered name,
// with a Rejection in its details; ExecuteCommand turns it back into a
// *DomainError that errors.Is matches against the domain error value.
// Conflicts and store failures are retryable; bad payloads, unknown
// commands, invalid input and codec failures are not, and say what is
// wrong.
//
// # Workflows
//
// ExecuteCommand runs a command from a workflow with DefaultActivityOptions.
// Workflows adapts a Temporal client to reactors.Workflows, so reactors can
// start and signal workflows as durable effects.
package activities
