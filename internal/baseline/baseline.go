// Package baseline builds event stores with a lock strategy that factos
// does not offer, for the benchmark's side-by-side comparison only.
//
// SERIALIZABLE isolation was a lock strategy of its own until it was shown
// not to keep the guarantee in position order (docs/consistency.md). The
// benchmark still measures it as a labelled baseline; being internal, this
// door is closed to applications.
package baseline

// Serializable returns a copy of cfg, an *eventstore.Config, that runs
// dispatches at SERIALIZABLE isolation with retries and no context locks.
// The eventstore package sets it when it initializes (it cannot be
// imported from here without an import cycle).
var Serializable func(cfg any) any
