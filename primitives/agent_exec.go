package primitives

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

type execArgs struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	TTY  bool     `json:"tty"`            // stdin is the learner's terminal: make the command its foreground job
	Dir  string   `json:"dir,omitempty"`  // working directory (an image's WorkingDir)
	User *IDs     `json:"user,omitempty"` // uid and gid (an image's User)
}

// execStarted is the first answer to exec; the pidfd travels with it so the
// session can signal the command (Ctrl-C) and read its host PID.
type execStarted struct {
	PID int `json:"pid"` // as the box sees it
}

// ExitStatus is how a command inside a box ended.
type ExitStatus struct {
	Code   int        `json:"code"`             // exit code, or 128+signal
	Signal string     `json:"signal,omitempty"` // the signal that killed it
	Step   *step.Step `json:"-"`                // what was done, in strace form
}

// exec starts a command inside the box and answers twice: once started
// (with a pidfd), once it has exited. It forks from the locked main thread,
// so the command inherits every namespace, root and cgroup the steps gave
// this thread.
func (a *agent) exec(raw json.RawMessage, files []*os.File) {
	defer func() { closeAll(files) }()
	var args execArgs
	if err := json.Unmarshal(raw, &args); err != nil || len(args.Argv) == 0 || len(files) != 3 {
		a.conn.send(response{Err: "exec: bad request"})
		return
	}
	path, err := lookPath(args.Argv[0], args.Env)
	if err != nil {
		a.conn.send(errorResponse(err))
		return
	}
	pidfd := -1
	attr := &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd, Pdeathsig: syscall.SIGKILL}
	if args.TTY {
		// The shell becomes the terminal's foreground process group, so
		// Ctrl-C and job control reach it, not the session. With
		// Foreground, Ctty is a descriptor of this process (the terminal
		// the session passed), not of the child (syscall.SysProcAttr).
		attr.Foreground = true
		attr.Ctty = int(files[0].Fd())
	}
	pid, wait, err := a.reaper.start(func() (int, error) {
		// This process asked the OOM killer to take it last (agent.go),
		// and a child inherits oom_score_adj at fork: with -999 the command
		// would be as unlikely a victim as the box's init, and at the
		// box's memory limit, after the hog, the init would go next.
		defer a.lendOOMScore(a.commandOOMScore)()
		if args.User != nil {
			attr.Credential = &syscall.Credential{Uid: args.User.UID, Gid: args.User.GID, Groups: []uint32{}}
		}
		p, err := os.StartProcess(path, args.Argv, &os.ProcAttr{Dir: args.Dir, Env: args.Env, Files: files, Sys: attr})
		if err != nil {
			return 0, err
		}
		defer p.Release()
		return p.Pid, nil
	})
	if err != nil {
		a.conn.send(response{Err: fmt.Sprintf("exec %s: %v", args.Argv[0], err)})
		return
	}
	closeAll(files)
	files = nil
	fd := os.NewFile(uintptr(pidfd), "pidfd")
	data, _ := json.Marshal(execStarted{PID: pid})
	a.conn.send(response{More: true, Data: data}, fd)
	fd.Close()
	ws := <-wait
	st := ExitStatus{Code: ws.ExitStatus()}
	if ws.Signaled() {
		st.Code = 128 + int(ws.Signal())
		st.Signal = unix.SignalName(ws.Signal())
	}
	data, _ = json.Marshal(st)
	a.conn.send(response{Data: data})
}

// lendOOMScore sets this process's oom_score_adj to score for the fork of
// a command, and returns what sets it back. Neither way needs
// CAP_SYS_RESOURCE: the value PID 1 started with is its oom_score_adj_min
// when it could set -999, and score (0 or 1000) is above it otherwise
// (proc(5)).
func (a *agent) lendOOMScore(score string) func() {
	const file = "/proc/self/oom_score_adj"
	old, err := os.ReadFile(file)
	if score == "" || err != nil || strings.TrimSpace(string(old)) == score {
		return func() {}
	}
	if err := os.WriteFile(file, []byte(score), 0); err != nil {
		fmt.Fprintf(a.log, "oom_score_adj: %v\n", err)
		return func() {}
	}
	return func() {
		if err := os.WriteFile(file, old, 0); err != nil {
			fmt.Fprintf(a.log, "oom_score_adj: %v\n", err)
		}
	}
}

// lookPath finds a command in the PATH of the command's environment, as
// the box sees its filesystem (this thread's root and mounts).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := searchPath(env)
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if unix.Access(p, unix.X_OK) == nil {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("exec: %q: command not found in the box (PATH=%s)", name, path)
}

// searchPath is the PATH of env, or the box's default.
func searchPath(env []string) string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	return path
}

// LookPath finds a program as `exec NAME` would, from the host: through
// /proc/PID/root, which resolves in the box's root and mount namespace.
// A symlink counts as found: an absolute one (busybox's applets) would
// resolve against the host's root from here.
func (b *Box) LookPath(name string) (string, error) {
	root := fmt.Sprintf("/proc/%d/root", b.CommandPID())
	path := searchPath(b.env(nil))
	for _, dir := range filepath.SplitList(path) {
		fi, err := os.Lstat(filepath.Join(root, dir, name))
		if err == nil && (fi.Mode()&os.ModeSymlink != 0 || fi.Mode().IsRegular() && fi.Mode()&0o111 != 0) {
			return filepath.Join(dir, name), nil
		}
	}
	return "", fmt.Errorf("exec: %q: command not found in the box (PATH=%s)", name, path)
}
