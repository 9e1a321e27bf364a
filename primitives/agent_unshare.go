package primitives

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

type unshareArgs struct {
	Types     []string      `json:"types"` // already validated and sorted by the session
	Boottime  time.Duration `json:"boottime,omitempty"`
	Monotonic time.Duration `json:"monotonic,omitempty"`
	Box       string        `json:"box"`
}

// unshareResult reports a new PID 1 when `pid` was among the types.
type unshareResult struct {
	InitPID int      `json:"init_pid,omitempty"` // host PID of the new PID 1
	sock    *os.File // the session's end of PID 1's socket
}

func (r unshareResult) files() []*os.File {
	if r.sock == nil {
		return nil
	}
	return []*os.File{r.sock}
}

func opUnshare(a *agent, raw json.RawMessage, files []*os.File) (any, *step.Step, error) {
	closeAll(files)
	var args unshareArgs
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, nil, err
	}
	st := &step.Step{Command: "unshare " + strings.Join(args.Types, " ")}
	var res unshareResult
	for _, name := range args.Types {
		t, err := LookupNamespace(name)
		if err != nil {
			return nil, st, err
		}
		st.Man = append(st.Man, t.Man)
		switch t.Name {
		case "user":
			return nil, st, errUnshareUser
		case "pid":
			pid, sock, err := a.unsharePID(st, args.Box)
			if err != nil {
				return nil, st, err
			}
			res.InitPID, res.sock = pid, sock
		default:
			if err := st.Do(fmt.Sprintf("unshare(%s)", step.CloneFlags(t.Flag)), func() error { return unix.Unshare(int(t.Flag)) }); err != nil {
				return nil, st, err
			}
			st.Shell = append(st.Shell, "unshare "+t.Option+" sh   # a shell in a new "+t.Name+" namespace")
		}
		switch t.Name {
		case "mnt":
			// A new mount namespace starts as a copy whose mounts still
			// share propagation with the host's (systemd makes / shared):
			// make it a slave before anything is mounted, so nothing the box
			// mounts reaches the host (mount_namespaces(7), "Shared subtrees").
			flags := uintptr(unix.MS_REC | unix.MS_SLAVE)
			if err := st.Do(step.MountCall("none", "/", "", flags, ""), func() error {
				return unix.Mount("none", "/", "", flags, "")
			}); err != nil {
				return nil, st, err
			}
			st.Shell = append(st.Shell, "mount --make-rslave /")
			st.Man = append(st.Man, "mount(2)")
		case "time":
			if err := writeTimeOffsets(st, args.Boottime, args.Monotonic); err != nil {
				return nil, st, err
			}
		case "net":
			if err := loopbackUp(st); err != nil {
				return nil, st, err
			}
		}
	}
	st.Summary = "moved the box process into new namespaces: " + strings.Join(args.Types, ", ")
	st.Undo = "a namespace is freed when its last process exits and nothing holds it open: `rm` ends the box's processes"
	st.Man = append(st.Man, "unshare(2)", "namespaces(7)")
	return res, st, nil
}

var errUnshareUser = fmt.Errorf("unshare user: a running box process cannot enter a new user namespace: " +
	"unshare(CLONE_NEWUSER) fails with EINVAL in a multi-threaded process (every Go program is one), " +
	"and the user namespace must exist first because it owns the namespaces made after it; " +
	"start the box with `new NAME --user` instead")

// writeTimeOffsets sets the clocks of the new time namespace. The kernel
// accepts offsets only until the first process enters it
// (time_namespaces(7)), so this runs right after unshare.
func writeTimeOffsets(st *step.Step, boottime, monotonic time.Duration) error {
	var lines []string
	if monotonic != 0 {
		lines = append(lines, offsetLine("monotonic", monotonic))
	}
	if boottime != 0 {
		lines = append(lines, offsetLine("boottime", boottime))
	}
	for _, line := range lines {
		err := st.Do(fmt.Sprintf("write(\"/proc/self/timens_offsets\", %q, %d)", line, len(line)), func() error {
			return os.WriteFile("/proc/self/timens_offsets", []byte(line), 0)
		})
		if err != nil {
			return err
		}
		st.Shell = append(st.Shell, fmt.Sprintf("echo '%s' > /proc/self/timens_offsets", strings.TrimSpace(line)))
	}
	if len(lines) == 0 {
		st.Notes = append(st.Notes, "no clock offsets given: the box's clocks read like the host's until you pass --boottime or --monotonic")
	}
	st.Notes = append(st.Notes, "the time namespace applies to the box's children (time_for_children): the box process itself keeps the host's clocks")
	return nil
}

func offsetLine(clock string, d time.Duration) string {
	sec := int64(d / time.Second)
	nsec := int64(d % time.Second)
	return fmt.Sprintf("%s %d %d\n", clock, sec, nsec)
}

// unsharePID makes a new PID namespace for the box's children and starts
// the first of them, which becomes its PID 1 and the box's init: it reaps
// zombies and runs every later step and command, as `unshare --fork` does.
// A PID namespace dies with its PID 1, so this one lives until `rm`.
func (a *agent) unsharePID(st *step.Step, box string) (int, *os.File, error) {
	a.probeFork()
	if err := st.Do("unshare(CLONE_NEWPID)", func() error { return unix.Unshare(unix.CLONE_NEWPID) }); err != nil {
		return 0, nil, err
	}
	mine, theirs, err := socketpair()
	if err != nil {
		return 0, nil, err
	}
	defer theirs.Close()
	// PID 1's stderr is a pipe this process copies to its log: a host
	// file held open by PID 1 would be reachable from inside the box
	// through /proc/1/fd/2 once the box has its own root.
	logr, logw, err := os.Pipe()
	if err != nil {
		mine.Close()
		return 0, nil, err
	}
	defer logw.Close()
	go func() {
		io.Copy(os.Stderr, logr)
		logr.Close()
	}()
	pid, _, err := a.reaper.start(func() (int, error) {
		p, err := os.StartProcess(selfExe, []string{"stepbox", entryBox, box, "init", rootfs.HostMountNamespace()}, &os.ProcAttr{
			Env:   os.Environ(),
			Files: []*os.File{nil, nil, logw, theirs},
			Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		})
		if err != nil {
			return 0, err
		}
		defer p.Release()
		return p.Pid, nil
	})
	st.Record("clone(child_stack=NULL, flags=SIGCHLD)   # fork: the child is PID 1 in the new namespace", err)
	if err != nil {
		mine.Close()
		return 0, nil, &step.SyscallError{Call: "clone(flags=SIGCHLD)", Err: err}
	}
	st.Calls[len(st.Calls)-1].Result = fmt.Sprint(pid)
	st.Shell = append(st.Shell, "unshare --pid --fork --mount-proc sh   # --fork: only children enter the new PID namespace")
	st.Notes = append(st.Notes, fmt.Sprintf("PID %d on the host is PID 1 in the box: it stays alive as the box's init, and later steps and commands start from it", pid))
	return pid, mine, nil
}

// loopbackUp brings up lo in the new network namespace, as container
// runtimes do: a new namespace has only lo, and it starts down
// (network_namespaces(7)).
func loopbackUp(st *step.Step) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &step.SyscallError{Call: "socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, 0)", Err: err}
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return &step.SyscallError{Call: `ioctl(SIOCGIFFLAGS, {ifr_name="lo"})`, Err: err}
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	err = st.Do(`ioctl(3, SIOCSIFFLAGS, {ifr_name="lo", ifr_flags=IFF_UP|IFF_LOOPBACK|IFF_RUNNING})`, func() error {
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
	if err == nil {
		st.Shell = append(st.Shell, "ip link set lo up")
		st.Notes = append(st.Notes, "a new network namespace has only a loopback device, down until brought up; stepbox brings it up as container runtimes do")
	}
	return err
}
