package primitives

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// Hidden entry points of the stepbox binary. main dispatches them before
// anything else (see Reexec).
const (
	entryBox   = "__box"   // a box process, or the PID 1 it starts after `unshare pid`
	entryEnter = "__enter" // joins a box's namespaces with setns(2), then runs a command
)

// agentFD is where a box process finds its end of the socketpair.
const agentFD = 3

func init() {
	// A box process applies every step on its main thread, and
	// /proc/PID/ns shows the main thread: lock it before main runs so the
	// namespaces the learner sees are the ones the steps changed.
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "__") {
		runtime.LockOSThread()
	}
}

// Reexec runs a hidden entry point when os.Args names one, and never
// returns in that case. It returns false otherwise.
func Reexec() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case entryBox:
		os.Exit(runAgent())
	case entryEnter:
		os.Exit(runEnter(os.Args[2:]))
	}
	return false
}

// agent is the box-process side of the protocol: it owns one box's
// kernel state and applies the session's requests on its locked thread.
type agent struct {
	conn   *conn
	reaper *reaper
	isInit bool // PID 1 of a PID namespace stepbox made
	// The oom_score_adj the commands it starts get, and (PID 1) why, if
	// it is not the default.
	commandOOMScore, oomNote string
	probed                   bool // Go's CLONE_PIDFD probe has run (see unsharePID)
	log                      io.Writer
}

// agentOp is one entry of the op switch. It runs on the locked main thread.
type agentOp func(a *agent, args json.RawMessage, files []*os.File) (any, *step.Step, error)

var agentOps = map[string]agentOp{
	"hello":       opHello,
	"unshare":     opUnshare,
	"sethostname": opSethostname,
	"cgroup-view": opCgroupView,

	"mount-overlay": opMountOverlay,
	"mount":         opMount,
	"pivot-root":    opPivotRoot,
	"chroot":        opChroot,
	"breakout":      opBreakout,
}

func runAgent() int {
	a := &agent{log: os.Stderr, isInit: os.Getpid() == 1}
	// Die with the parent: the session for a box process, the box process
	// for a PID 1. The kernel sends the signal when the parent thread
	// exits; the parent spawns from a thread that lives as long as it does.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintf(a.log, "prctl(PR_SET_PDEATHSIG): %v\n", err)
		return 1
	}
	if !a.isInit {
		// Orphans of container processes re-parent to the box process
		// rather than the host's init, so teardown finds them.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintf(a.log, "prctl(PR_SET_CHILD_SUBREAPER): %v\n", err)
		}
	} else {
		// PID 1 ignores signals it has no handler for only when sent from
		// inside its namespace; Go installs handlers, so catch and drop the
		// polite ones. (Notify, not Ignore: ignored signals survive execve
		// into the commands PID 1 starts.)
		signal.Notify(make(chan os.Signal, 1), unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)
	}
	// When the box's memory limit is hit by something the OOM killer
	// cannot pin on a process (tmpfs pages), the largest process, the
	// process that starts the box's commands (PID 1, or the box process
	// before there is one), would be chosen and the whole box would die.
	// Like containerd's shim, it asks to go last (proc(5), oom_score_adj;
	// a user namespace may refuse, which only costs that guarantee).
	// Without CAP_SYS_RESOURCE (a sandboxed root) it may not go below 0;
	// then the commands it starts volunteer instead, at 1000, as
	// Kubernetes marks best-effort pods: raising needs no privilege.
	a.commandOOMScore = "0"
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-999"), 0); err != nil {
		fmt.Fprintf(a.log, "oom_score_adj: %v\n", err)
		a.commandOOMScore = "1000"
		a.oomNote = "this host refused the box's oom_score_adj -999 for PID 1 (lowering it needs CAP_SYS_RESOURCE): " +
			"the commands PID 1 starts get oom_score_adj 1000 instead, so at the box's memory limit the OOM killer takes them before PID 1"
	}
	// A PID 1 starts in the box's mount namespace; the box process names
	// the host's for it (`__box NAME init DEV:INO`), so mounts stay refused
	// there.
	if len(os.Args) > 4 && os.Args[3] == "init" {
		if err := rootfs.SetHostMountNamespace(os.Args[4]); err != nil {
			fmt.Fprintf(a.log, "%v\n", err)
			return 1
		}
	}
	c, err := newConn(os.NewFile(agentFD, "stepbox-sock"))
	if err != nil {
		fmt.Fprintf(a.log, "%v\n", err)
		return 1
	}
	a.conn = c
	a.reaper = newReaper()
	for {
		var req request
		files, err := c.recv(&req)
		if err != nil {
			// The session is gone: nothing more to do.
			return 0
		}
		if req.Op == "exec" {
			a.exec(req.Args, files)
			continue
		}
		op, ok := agentOps[req.Op]
		if !ok {
			closeAll(files)
			c.send(response{Err: fmt.Sprintf("box process: unknown op %q", req.Op)})
			continue
		}
		data, st, err := op(a, req.Args, files)
		var resp response
		if err != nil {
			resp = errorResponse(err)
		}
		resp.Step = st
		var out []*os.File
		if err == nil && data != nil {
			if ho, ok := data.(withFiles); ok {
				out = ho.files()
			}
			resp.Data, _ = json.Marshal(data)
		}
		if err := c.send(resp, out...); err != nil {
			fmt.Fprintf(a.log, "send: %v\n", err)
		}
		closeAll(out)
	}
}

// withFiles is a result that carries file descriptors to the session.
type withFiles interface{ files() []*os.File }

// helloResult tells the session who the box process is.
type helloResult struct {
	PID     int    `json:"pid"` // as the process itself sees it
	IsInit  bool   `json:"is_init"`
	OOMNote string `json:"oom_note,omitempty"` // PID 1: why its commands' oom_score_adj is not 0
}

func opHello(a *agent, _ json.RawMessage, files []*os.File) (any, *step.Step, error) {
	closeAll(files)
	return helloResult{PID: os.Getpid(), IsInit: a.isInit, OOMNote: a.oomNote}, nil, nil
}

type hostnameArgs struct {
	Name string `json:"name"`
}

func opSethostname(a *agent, raw json.RawMessage, files []*os.File) (any, *step.Step, error) {
	closeAll(files)
	var args hostnameArgs
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, nil, err
	}
	st := &step.Step{
		Command: "hostname " + args.Name,
		Summary: "set the hostname of the box's UTS namespace",
		Shell:   []string{"hostname " + args.Name},
		Man:     []string{"sethostname(2)", "uts_namespaces(7)"},
		Undo:    "the UTS namespace, and the name with it, is freed when its last process exits",
	}
	err := st.Do(fmt.Sprintf("sethostname(%s, %d)", step.Quote(args.Name), len(args.Name)), func() error {
		return unix.Sethostname([]byte(args.Name))
	})
	return nil, st, err
}

// selfExe is the path a box process re-executes. /proc/self/exe is a magic
// link: it reaches the binary even where the path to it is not visible.
const selfExe = "/proc/self/exe"

// probeFork makes Go's os package run its one-time CLONE_PIDFD probe now.
// If the probe's throw-away child were the first process forked after
// unshare(CLONE_NEWPID), it would become PID 1 and its exit would kill the
// namespace: every later fork would fail with ENOMEM (pid_namespaces(7)).
// os.FindProcess runs the probe (Go 1.23+: it opens a pidfd) without
// starting a program.
func (a *agent) probeFork() {
	if a.probed {
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Release()
	}
	a.probed = true
}
