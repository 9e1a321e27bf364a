package primitives

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
)

// An executor stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) or
// held in a tracing stop answers nothing until it is continued: a box
// without a PID namespace of its own sees its box process as its
// commands' parent, and `exec sh -c 'kill -STOP $PPID'` stopped it, so the
// session waited for ever for the exit it would never report, and Ctrl-C
// did nothing (ut25 F5). Every wait on an executor's socket looks at its
// state; one that stays stopped is given up as one that does not answer,
// saying so, and `rm` ends it (SIGKILL ends a stopped process).

// stoppedPoll is how often a wait looks at the executor's state, and
// stoppedGrace how long the executor must stay stopped to be given up: a
// debugger's brief stops, or a learner's SIGSTOP and SIGCONT from the
// host, are let be.
var (
	stoppedPoll  = 100 * time.Millisecond
	stoppedGrace = time.Second
)

// stopState is the state of a stopped process in /proc/PID/stat (proc(5)),
// "" for any other: T stopped by a signal, t in a tracing stop.
func stopState(pid int) string {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return ""
	}
	st, err := p.Stat()
	if err != nil || st.State != "T" && st.State != "t" {
		return ""
	}
	return st.State
}

// watchStopped cuts every wait on x's socket once x has stayed stopped
// for stoppedGrace, until unwatch; the state it saw stays in x.c.stopped
// for silent's error.
//
// A frozen executor, or a frozen command of the wait (cmd, its host PID;
// 0 for none), is given up the same way: a cgroup freezer holds it
// (box_freeze.go), and it runs nothing until it is thawed.
func (x *executor) watchStopped(cmd ...int) (unwatch func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(stoppedPoll)
		defer tick.Stop()
		var since time.Time
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				state := stopState(x.pid)
				var frozen, who string
				if state == "" {
					frozen, who = x.frozen(cmd)
				}
				if frozen != "" {
					state = "F"
				}
				switch {
				case state == "":
					since = time.Time{}
				case since.IsZero():
					since = now
				case now.Sub(since) >= stoppedGrace:
					x.c.stopped.Store(&stopSeen{state: state, frozen: frozen, who: who, interrupted: x.c.cutAt.Load() != 0})
					x.c.cut(now)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// answered forgets a stop a watch saw when the executor answered all the
// same (continued as the watch cut the wait): the next wait is not cut.
func (c *conn) answered() {
	if c.stopped.Swap(nil) != nil {
		c.cutAt.Store(0)
	}
}

// stoppedError is silent's error for an executor seen stopped.
func (x *executor) stoppedError(op string, seen *stopSeen) *BoxSilentError {
	if seen.frozen != "" {
		return &BoxSilentError{Box: x.b.Name, Who: x.role(), PID: x.pid, Op: op, After: stoppedGrace, Frozen: seen.frozen, FrozenWho: seen.who}
	}
	how := "stopped by a signal (state T in /proc/PID/stat: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU)"
	if seen.state == "t" {
		how = "held in a tracing stop (state t in /proc/PID/stat: a debugger, ptrace(2))"
	}
	e := &BoxSilentError{Box: x.b.Name, Who: x.role(), PID: x.pid, Op: op, After: stoppedGrace, Stopped: how}
	if x == x.b.box && x.b.init == nil {
		// No PID namespace of its own: the box's commands see the box
		// process, their parent, and run as its user.
		e.StoppedBy = "A command in the box can do that (`kill -STOP $PPID`): without a PID namespace of its own, the box's commands see the box process, their parent, and run as its user. "
	}
	if seen.interrupted {
		e.After, e.Interrupted = interruptGrace, true
	}
	return e
}

// stoppedMsg is BoxSilentError's text for an executor it saw stopped.
func (e *BoxSilentError) stoppedMsg() string {
	waited := fmt.Sprintf("stayed so for %s", e.After)
	if e.Interrupted {
		waited = fmt.Sprintf("stayed so until %s of Ctrl-C", e.After)
	}
	return fmt.Sprintf("box %s: its %s (host PID %d) did not answer %s: it was %s, and %s. A stopped process answers nothing until it is continued. %sThe box takes no more steps; `rm %s` ends it and everything in it",
		e.Box, e.Who, e.PID, e.Op, e.Stopped, waited, e.StoppedBy, e.Box)
}

// stopSeen is what a watch saw: the executor's state, and whether the
// learner's Ctrl-C had already cut the wait.
type stopSeen struct {
	state       string
	frozen, who string // what says it is frozen, and which process is
	interrupted bool
}

// stoppedState is the conn's record of a stop its watch saw.
type stoppedState = atomic.Pointer[stopSeen]

// StoppedCommand is a box command seen stopped while its exec or enter
// waited for it: it never exits until it is continued or killed.
type StoppedCommand struct {
	HostPID int
	BoxPID  int    // its PID in its own PID namespace (0: not known)
	State   string // T (stopped by a signal) or t (a tracing stop)
	// For is how long it had stayed stopped: stoppedGrace for the
	// notice, Stdio.EndStopped once the wait ended it.
	For time.Duration
}

// watchCommandStopped looks at the state of the command whose host PID
// pid gives (0 while not known) every stoppedPoll, and calls std.Stopped
// once when it has stayed stopped for stoppedGrace, and end once it has
// stayed stopped for std.EndStopped (0: never), until stop. end ends the
// command; the watch says so in *ended, which the caller reads once stop
// has returned. Neither set: nothing to watch for.
func watchCommandStopped(pid func() int, std Stdio, end func(), ended **StoppedCommand) (stop func()) {
	notice := std.Stopped
	if notice == nil && std.EndStopped <= 0 {
		return func() {}
	}
	done, over := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(over)
		tick := time.NewTicker(stoppedPoll)
		defer tick.Stop()
		var since time.Time
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				p := pid()
				state := ""
				if p > 0 {
					state = stopState(p)
				}
				seen := func(d time.Duration) StoppedCommand {
					return StoppedCommand{HostPID: p, BoxPID: innermostPID(p), State: state, For: d}
				}
				switch {
				case state == "":
					// Continued: a later stop is timed afresh.
					since = time.Time{}
				case since.IsZero():
					since = now
				case std.EndStopped > 0 && now.Sub(since) >= std.EndStopped:
					c := seen(std.EndStopped)
					*ended = &c
					end()
					return
				case notice != nil && now.Sub(since) >= stoppedGrace:
					notice(seen(stoppedGrace))
					notice = nil // once
					if std.EndStopped <= 0 {
						return
					}
				}
			}
		}
	}()
	return func() {
		close(done)
		<-over
	}
}

// innermostPID is pid's PID in its own PID namespace, the last of the
// NSpid line of its status (0 when it is gone).
func innermostPID(pid int) int {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil || len(st.NSpids) == 0 {
		return 0
	}
	return int(st.NSpids[len(st.NSpids)-1])
}

// childOf is the first child of pid (its main thread's), 0 for none: the
// command the enter process forked.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
