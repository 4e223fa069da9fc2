package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// console is make dev's output: progress lines a person can follow. It
// outlives its reader: with `make dev | tee dev.log` and ^C, tee is gone
// before the cleanup has printed anything; writes then fail (SIGPIPE is
// ignored, see main) and are dropped, and the cleanup goes on.
type console struct {
	f *os.File

	mu       sync.Mutex
	closed   bool
	onClosed func() // called once when the reader is found gone
}

func newConsole(f *os.File) *console { return &console{f: f} }

// say prints a step: "==> starting PostgreSQL".
func (c *console) say(format string, args ...any) { c.printf("==> "+format+"\n", args...) }

// detail prints a line under a step: "    ready in 2.1s".
func (c *console) detail(format string, args ...any) { c.printf("    "+format+"\n", args...) }

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if _, err := fmt.Fprintf(c.f, format, args...); errors.Is(err, syscall.EPIPE) {
		c.closeLocked()
	}
}

func (c *console) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	if c.onClosed != nil {
		go c.onClosed()
	}
}

// watch calls onClosed when the console's reader goes away, even while
// nothing is printed: the write end of a pipe reports POLLERR once its
// last reader has closed it. Terminals report a hang-up with SIGHUP
// instead, and files have no reader to lose, so only pipes and sockets
// are watched.
func (c *console) watch(onClosed func()) {
	c.mu.Lock()
	c.onClosed = onClosed
	c.mu.Unlock()
	// The descriptor is read once, here: os.File.Fd in the goroutine would
	// race with a Close of the file (the race detector says so), and the
	// number is all poll needs (a closed one reports POLLNVAL).
	fd := int(c.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO && st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return
	}
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd)}} // no events: only POLLERR and POLLHUP
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return
			}
			if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				c.mu.Lock()
				c.closeLocked()
				c.mu.Unlock()
				return
			}
		}
	}()
}
