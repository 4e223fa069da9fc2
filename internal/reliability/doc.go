// Package reliability holds the fault-injection suite: dispatch connections
// killed at chosen points, PostgreSQL and Temporal restarted, the worker
// SIGKILLed (also in the middle of projection batches), effects that hang
// or keep failing — each under concurrent load
// and each ending in an invariant check — and a soak (TestSoak): a fixed
// rate of commands through the store, the outbox and River's workers,
// checking that heap, goroutines and pool connections level off. The
// package has no code of its own beyond the test worker in testworker/;
// `make test` runs the short profile and `make reliability` the long one
// (FACTOS_RELIABILITY=long). See docs/reliability.md.
package reliability
