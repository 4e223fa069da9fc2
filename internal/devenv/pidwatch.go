package devenv

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// watchPid returns a channel closed when process pid ends. It need not be
// our child: a pidfd (Linux 5.3+) becomes readable when the process exits.
func watchPid(pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("error watching process %d: %w", pid, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return done, nil
}
