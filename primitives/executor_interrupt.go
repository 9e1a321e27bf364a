package primitives

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// interruptGrace is how long an executor has left to answer once the
// learner pressed Ctrl-C. A live executor answers an op in far less; one
// that has not is stopped or stuck (SIGSTOP, a ptrace stop), and the
// learner, who asked to stop, is not kept waiting replyTimeout for it
// (ut22 L2): the box is given up at once, as after replyTimeout, and `rm`
// ends it.
var interruptGrace = time.Second

// interruptible arms ctx's end (Ctrl-C) to cut every wait on x's socket
// to interruptGrace from then; disarm, once the wait is over, undoes it.
func (x *executor) interruptible(ctx context.Context) (disarm func()) {
	c := x.c
	ran := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(ran)
		c.cut(time.Now().Add(interruptGrace))
	})
	return func() {
		if !stop() {
			<-ran
		}
		c.cutAt.Store(0)
	}
}

// cut bounds every wait on the socket, the one under way included, by at.
func (c *conn) cut(at time.Time) {
	c.cutAt.Store(at.UnixNano())
	c.c.SetDeadline(at)
}

// bound sets a deadline with set, no later than a cut. A cut made while it
// is set is applied again after: its own SetDeadline may come first.
func (c *conn) bound(set func(time.Time) error, deadline time.Time) {
	for range 2 {
		d := deadline
		if n := c.cutAt.Load(); n != 0 && (d.IsZero() || time.Unix(0, n).Before(d)) {
			d = time.Unix(0, n)
		}
		set(d)
		if c.cutAt.Load() == 0 {
			return
		}
	}
}

// cutOnceEnded cuts the wait on x's socket to interruptGrace once the
// cancelled command behind pidfd has ended (within interruptGrace of its
// SIGKILL): its executor then has only its exit to report.
func (x *executor) cutOnceEnded(pidfd *os.File) {
	if pidfd == nil {
		return
	}
	fds := []unix.PollFd{{Fd: int32(pidfd.Fd()), Events: unix.POLLIN}}
	for deadline := time.Now().Add(interruptGrace); time.Now().Before(deadline); {
		n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond)+1)
		if n > 0 {
			x.c.cut(time.Now().Add(interruptGrace))
			return
		}
		if err != nil && err != unix.EINTR {
			return
		}
	}
}
