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
// An id is bound to its command: the store keeps a fingerprint of the
// command's name and JSON payload with it, and the same id sent with
// another command or payload fails with a non-retryable application error
// of type ErrTypeCommandIDReused, appending nothing. Ids are remembered for
// the ledger's retention (eventstore.CommandCleaner, COMMAND_ID_RETENTION
// in the worker): keep it longer than a workflow can retry an activity.
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
// ExecuteCommand runs a command from a workflow, through a regular
// activity with DefaultActivityOptions, or through a local activity with
// DefaultLocalActivityOptions when CommandOptions.Local is set.
// Activities.Register registers both (DispatchActivity and
// DispatchLocalActivity). The other direction, events starting and
// signalling workflows as durable effects, is the temporaleffects
// package's.
//
// # Two paths
//
// A regular activity is scheduled through the Temporal server: the
// workflow task that calls ExecuteCommand ends, the server hands an
// activity task to a worker, the worker reports the result, and the server
// hands the workflow a second workflow task to go on. A local activity
// runs in the worker that runs the workflow, inside the workflow task, and
// its result is recorded in the history as a marker when that task
// completes: one workflow task instead of two, no activity task. For a
// workflow that sends one command and returns, that is one hand-off
// instead of three. The one left is the start: a process that starts
// workflows with the client its worker was created with can have the
// server hand the first workflow task straight back to that worker
// (client.StartWorkflowOptions.EnableEagerStart; temporaleffects.Adapter's
// EagerStart for the start effect), and then no task of the workflow goes
// through a task queue. docs/benchmarks.md measures the three ways on the
// same server: on its Temporal dev server, one command per workflow, the
// local activity alone halves the latency of a lone command (p50 22ms
// against 44ms) and gives about 1.6 times the commands per second of the
// regular activity at 16 clients; with the eager start, 16ms and about
// 2.3 times. (The start, the completion and the client's wait for the
// result are a fixed cost of every workflow, which neither saves.)
//
// The exactly-once guarantee is the same on both paths, and rests on the
// same thing: the command id, stored in the dispatch transaction. A local
// activity runs more than once in more ways than a regular one, and each
// is answered from the stored result: an attempt retried after a failure
// (even one that failed after its commit); a workflow task that fails or
// whose worker dies after the dispatch committed (the marker is lost with
// the task, so the next task runs the local activity again, from attempt
// 1); a reset, which runs the workflow's code again in a new run (the
// command id does not depend on the run id).
//
// The trade-offs of the local path:
//
//   - It needs a CommandID the workflow derives (CommandIDFor).
//     NewCommandID, the regular path's default, is recorded in the history
//     when the workflow task completes, and the local activity runs inside
//     that task: a task lost after the dispatch committed would draw a new
//     id and send the command again. ExecuteCommand refuses Local without a
//     CommandID.
//   - Its payload is encoded again when it runs again. A regular
//     activity's input is recorded in the history, so its retries resend
//     the bytes of the first attempt; a local activity that runs again
//     after a lost workflow task encodes the command anew, with whatever
//     code the worker now runs. Should a deploy change how the command
//     encodes (a new field) between a commit and that re-run, the stored
//     fingerprint no longer matches and the command fails with
//     eventstore.ErrCommandIDReused although it committed. Deploy a change
//     of a command's type when no workflow is mid-command, or version the
//     workflow (workflow.GetVersion) to send the new type under a new
//     command id.
//   - It must be short. A local activity holds its workflow task open. An
//     attempt gets StartToCloseTimeout (5s by default, inside the default
//     workflow task timeout of 10s); when it expires the attempt's context
//     is cancelled, the dispatch's transaction rolls back unless it had
//     committed, and the attempt is retried. While a local activity (or
//     its in-worker retries) runs past 80% of the workflow task timeout,
//     the SDK completes the workflow task and opens another to keep it
//     alive: more history events and server round trips, no failure. A
//     command that can take long (it waits on a contended context for
//     seconds, say) belongs on the regular path.
//   - Retries follow the retry policy and ScheduleToCloseTimeout like a
//     regular activity's, but where they happen depends on the backoff: a
//     backoff up to the workflow task timeout is slept in the worker,
//     keeping the workflow task open; a longer one becomes a timer in the
//     history, and the next attempt runs in a later workflow task. A long
//     database outage thus adds a marker, a timer and a workflow task to
//     the history per attempt past the first backoffs. Rejections, bad
//     payloads and codec failures are not retried on either path.
//   - A retrying local activity is not visible as a pending activity in
//     Temporal's UI, and the SDK does not log its failures: they show in
//     the store's dispatch metrics (factosfx exports them by outcome) and
//     the SDK's local activity metrics (temporal_local_activity_*), and the
//     last one in the marker and the workflow's error. A worker crash is
//     noticed only when the workflow task times out (the workflow task
//     timeout, 10s by default).
//   - No heartbeats: a local activity cannot heartbeat (the SDK ignores
//     activity.RecordHeartbeat). The dispatch does not heartbeat on either
//     path; it is short and idempotent, so a retry costs one dispatch.
//   - It runs where the workflow runs: register Activities on every worker
//     that runs workflows using the local path (factosfx does, on its one
//     worker). A worker's local activities are bounded by
//     worker.Options.MaxConcurrentLocalActivityExecutionSize (1000 by
//     default); size the pool of the store accordingly.
//   - Errors arrive differently. On the regular path a failure reaches the
//     workflow as a *temporal.ActivityError wrapping the
//     *temporal.ApplicationError; on a real server a local activity's
//     failure arrives as its cause itself, the *temporal.ApplicationError
//     for the activity's own errors. (The SDK's test environment wraps
//     both.) Match *DomainError, *temporal.ApplicationError and the other
//     causes with errors.As, which works on both paths.
//   - Switching a running workflow from one path to the other changes the
//     commands it records, which Temporal refuses on replay: guard the
//     switch with workflow.GetVersion, as examples/tickets'
//     BuyTicketWorkflow does.
//
// Use the local path for short commands whose latency matters: a workflow
// that a request waits on, many short workflows. Use the regular path for
// commands that may run long, when pending retries should be visible in
// Temporal's UI, when activities run on workers other than the
// workflows', or when the workflow task timeout is short.
package activities
