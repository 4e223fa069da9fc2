package factostest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records what the kit reports instead of
// failing the test, so that the kit's own tests can check that it fails
// when it must, and what it says. Everything it does not override goes to
// the real test (Context, Name, Cleanup, Log).
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
	fatal  string
}

// record runs f with a recorder in a goroutine of its own, as the testing
// package runs a test, so that Fatalf ends f (runtime.Goexit) and not the
// caller.
func record(t *testing.T, f func(tb testing.TB)) *recorder {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) { r.Error(fmt.Sprintf(format, args...)) }

func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprint(args...))
}

func (r *recorder) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fail()                { r.Error("Fail") }
func (r *recorder) FailNow()             { r.Fatal("FailNow") }
func (r *recorder) Failed() bool         { return len(r.errors) > 0 || r.fatal != "" }
func (r *recorder) SkipNow()             { r.Fatal("SkipNow") }
func (r *recorder) Skip(...any)          { r.Fatal("Skip") }
func (r *recorder) Skipf(string, ...any) { r.Fatal("Skipf") }

// passes fails t if the kit reported anything.
func (r *recorder) passes(t *testing.T) {
	t.Helper()
	if r.fatal != "" {
		t.Errorf("the kit stopped the test: %s", r.fatal)
	}
	for _, e := range r.errors {
		t.Errorf("the kit reported: %s", e)
	}
}

// fails checks that the kit reported one error per want, in order, each
// containing every part of its want.
func (r *recorder) fails(t *testing.T, want ...[]string) {
	t.Helper()
	if r.fatal != "" {
		t.Errorf("the kit stopped the test (Fatalf), want errors: %s", r.fatal)
	}
	if len(r.errors) != len(want) {
		t.Errorf("the kit reported %d errors, want %d:\n%s", len(r.errors), len(want), strings.Join(r.errors, "\n---\n"))
		return
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(r.errors[i], p) {
				t.Errorf("error %d does not say %q:\n%s", i, p, r.errors[i])
			}
		}
	}
}

// stops checks that the kit stopped the test with Fatalf, saying every part.
func (r *recorder) stops(t *testing.T, parts ...string) {
	t.Helper()
	if r.fatal == "" {
		t.Errorf("the kit did not stop the test; errors: %q", r.errors)
		return
	}
	for _, p := range parts {
		if !strings.Contains(r.fatal, p) {
			t.Errorf("the fatal report does not say %q:\n%s", p, r.fatal)
		}
	}
}

// The recorder itself: Fatalf ends the scenario where it is called, and
// errors are kept in order. Without this the kit's failure tests could
// pass on a recorder that swallows everything.
func TestRecorder(t *testing.T) {
	t.Parallel()
	reached := false
	r := record(t, func(tb testing.TB) {
		tb.Errorf("one %d", 1)
		tb.Error("two")
		tb.Fatalf("stop %s", "here")
		reached = true
	})
	if reached {
		t.Error("code after Fatalf ran")
	}
	if r.fatal != "stop here" || len(r.errors) != 2 || r.errors[0] != "one 1" || r.errors[1] != "two" || !r.Failed() {
		t.Errorf("recorded fatal %q, errors %q", r.fatal, r.errors)
	}
	if clean := record(t, func(testing.TB) {}); clean.Failed() {
		t.Error("a scenario that reported nothing failed")
	}
}
