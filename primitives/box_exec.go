package primitives

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// Stdio is where a command's standard streams go.
type Stdio struct {
	In       *os.File // nil: /dev/null
	Out, Err io.Writer
}

// Exec runs argv inside the box and waits for it. Cancelling ctx sends
// SIGINT to the command's process group, then SIGKILL. With tty the
// command gets the terminal (In) as its controlling, foreground terminal.
// ExitStatus.Step is the record: the plan's calls with what happened.
func (b *Box) Exec(ctx context.Context, argv []string, env []string, std Stdio, tty bool) (ExitStatus, error) {
	st, err := b.PlanExec(argv)
	if err != nil {
		return ExitStatus{}, err
	}
	st.Ran()
	es, err := b.exec(ctx, argv, env, std, tty, st)
	es.Step = st
	return es, err
}

// Where exec's record (PlanExec) holds each call.
const (
	execClone = iota
	execSetpgid
	execDup
	execExecve
	execWait
)

func (b *Box) exec(ctx context.Context, argv []string, env []string, std Stdio, tty bool, st *step.Step) (ExitStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return ExitStatus{}, b.dead
	}
	files, pump, err := stdioFiles(std)
	if err != nil {
		return ExitStatus{}, err
	}
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	c := b.active()
	resp, got, err := b.roundTrip(c, "exec", b.execArgs(argv, env, tty), files.send...)
	files.closeSent()
	if err != nil {
		pump.wait(0)
		return ExitStatus{}, err
	}
	if err := resp.error(); err != nil {
		closeAll(got)
		pump.wait(0)
		st.Calls[execExecve].Result = step.Result(err)
		if step.Errno(err) == 0 {
			st.Calls[execExecve].Result = "-1 (" + err.Error() + ")"
		}
		return ExitStatus{}, err
	}
	var started execStarted
	json.Unmarshal(resp.Data, &started)
	st.Calls[execClone].Result = fmt.Sprint(started.PID)
	st.Calls[execSetpgid].Result, st.Calls[execDup].Result, st.Calls[execExecve].Result = "0", "0", "0"
	// The command carries the box's environment markers, which the
	// ledger's "processes" line covers: no line of its own is needed.
	var pidfd *os.File
	if len(got) == 1 {
		pidfd = got[0]
		defer pidfd.Close()
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cancelCommand(pidfd, done)
		case <-done:
		}
	}()
	var exit response
	_, err = c.recv(&exit)
	close(done)
	if err != nil {
		pump.wait(0)
		return ExitStatus{}, b.died(err)
	}
	var es ExitStatus
	json.Unmarshal(exit.Data, &es)
	st.Calls[execWait].Result = fmt.Sprintf("%d (exit status %d)", started.PID, es.Code)
	if es.Signal != "" {
		st.Calls[execWait].Result = fmt.Sprintf("%d (killed by %s)", started.PID, es.Signal)
	}
	// Output a command left to a background child can keep a pipe open:
	// take what is there, then stop.
	pump.wait(100 * time.Millisecond)
	return es, exit.error()
}

// cancelCommand asks politely (SIGINT to the process group), then insists.
func cancelCommand(pidfd *os.File, done <-chan struct{}) {
	if pidfd == nil {
		return
	}
	hp := pidfdPID(pidfd)
	if hp > 0 {
		unix.Kill(-hp, unix.SIGINT)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		if hp > 0 {
			unix.Kill(-hp, unix.SIGKILL)
		}
		unix.PidfdSendSignal(int(pidfd.Fd()), unix.SIGKILL, nil, 0)
	}
}

// pidfdPID reads the PID behind a pidfd as this process's namespace sees
// it (the "Pid:" line of /proc/self/fdinfo, see pidfd_open(2)).
func pidfdPID(f *os.File) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			var pid int
			fmt.Sscan(strings.TrimSpace(v), &pid)
			return pid
		}
	}
	return 0
}
