package repl

import "golang.org/x/sys/unix"

// outputGone reports whether any of fds is a pipe or socket whose reader
// has gone: poll(2) says POLLERR (or POLLHUP) for its writing end.
// SIGPIPE, once the session asks for it (signal.Notify), comes for a
// write to any descriptor — a browser that closed its connection to the
// live view too — so it ends the session only when its own output has
// nowhere to go (`stepbox demo 1 | head`).
func outputGone(fds ...int) bool {
	p := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		p[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	}
	for {
		_, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		break
	}
	for _, f := range p {
		if f.Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			return true
		}
	}
	return false
}
