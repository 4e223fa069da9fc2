package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A console whose reader is gone drops what it is asked to print, and
// says so once: before anything is printed (the watch) and on a write.
func TestConsoleOutlivesItsReader(t *testing.T) {
	t.Parallel()
	for _, printFirst := range []bool{false, true} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		c := newConsole(w)
		closed := make(chan struct{}, 2)
		if printFirst {
			c.onClosed = func() { closed <- struct{}{} }
		} else {
			c.watch(func() { closed <- struct{}{} })
		}
		c.say("before")
		buf := make([]byte, 64)
		n, _ := r.Read(buf)
		if got := string(buf[:n]); got != "==> before\n" {
			t.Fatalf("read %q", got)
		}
		_ = r.Close()
		c.say("after") // EPIPE, not a crash
		c.detail("and after")
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("printFirst=%v: the closed reader went unnoticed", printFirst)
		}
		c.say("later")
	}
}

func TestLastLines(t *testing.T) {
	t.Parallel()
	got := lastLines(strings.Repeat("x\n", 20)+"last\n", 3)
	if got != "    x\n    x\n    last" {
		t.Fatalf("%q", got)
	}
}
