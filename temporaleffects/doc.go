// Package temporaleffects holds Temporal workflows as effects: the built-in
// start and signal effects and the adapter of a Temporal client.
//
// A reactor plans a workflow's start (StartWorkflowEffect) or a signal to
// a running workflow (SignalWorkflowEffect) like any other effect; Add
// registers the two effect handlers with a reactors.Registry, and they run
// as River jobs with the registry's retries and dead letter. Starting is
// idempotent by workflow id (a workflow id is never reused), so a retried
// or repeated start is a no-op; a signal to a workflow that does not exist
// or has ended gives up at once (ErrWorkflowNotFound).
//
// The handlers reach Temporal through the Workflows interface, and Adapter
// implements it with a Temporal SDK client (optionally starting workflows
// eagerly, Adapter.EagerStart). The package joins reactors and the
// Temporal SDK, so that neither reactors nor activities depend on the
// other, and reactors knows nothing of Temporal. The front door
// (factos.NewClient) registers these effects when its Config.Workflows is
// set; without it, nothing connects to Temporal.
package temporaleffects
