package rootfs_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// pivot_root and the chroot escape change a process's root for good, so
// they run in a child: this test binary re-executed with childEnv naming
// the scenario and childArgsEnv its arguments.
const (
	childEnv     = "STEPBOX_ROOTFS_CHILD"
	childArgsEnv = "STEPBOX_ROOTFS_CHILD_ARGS"
)

// childArgs is what a child scenario works on.
type childArgs struct {
	Layers              []rootfs.Layer
	Upper, Work, Merged string
	HostSecret          string // a host file the box must not read
	HostMountNS         string // the test's mount namespace: the child starts outside it
}

// childReport is what a child saw from inside the box.
type childReport struct {
	Err          string
	Hostname     string // /etc/hostname inside
	HostSecret   string // content of the host file, if it was reachable
	RootMounts   int    // mounts on "/" in /proc/1/mountinfo
	TmpFSType    string // what /proc/1/mountinfo shows on /tmp after MountTmpfs("/", "/tmp")
	Ls           string // busybox ls / (empty without busybox)
	MountFirst   string // first line of busybox mount
	Escape       rootfs.Escape
	EscapeSecret string   // the host file after the escape, if reachable
	Calls        []string // the syscalls of the steps, for scenarios that check them
	Changes      []string // the stack's changes, as "+ /path"
}

func runChild(name string) int {
	var args childArgs
	rep := childReport{}
	err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args)
	if err == nil && name != "container-host" {
		err = rootfs.SetHostMountNamespace(args.HostMountNS)
	}
	if err == nil {
		switch name {
		case "pivot":
			err = childPivot(args, &rep)
		case "chroot":
			err = childChroot(args, &rep)
		case "rootless":
			err = childRootless(args, &rep)
		case "container-host":
			err = childContainerHost(args, &rep)
		default:
			err = fmt.Errorf("unknown child scenario %q", name)
		}
	}
	if err != nil {
		rep.Err = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// childPivot is a box with its own PID and mount namespaces: overlay,
// pivot_root with proc, a look around, then — once the parent has looked
// in from the host and says "escape" — the breakout attempt.
func childPivot(a childArgs, rep *childReport) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	if _, err := rootfs.MountOverlay(rootfs.Local, a.Layers, a.Upper, a.Work, a.Merged); err != nil {
		return err
	}
	if _, err := rootfs.MountDev(rootfs.Local, a.Merged, "/dev"); err != nil {
		return err
	}
	if err := os.WriteFile(a.Merged+"/box-file", []byte("written in the box\n"), 0o644); err != nil {
		return err
	}
	if _, err := rootfs.PivotRoot(rootfs.Local, a.Merged, true); err != nil {
		return err
	}
	lookAround(a, rep)
	rep.HostSecret = readIfReachable(a.HostSecret)
	mi, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == "/" {
			rep.RootMounts++
		}
	}
	// After pivot_root, paths are inside the box's "/".
	if _, err := rootfs.MountTmpfs(rootfs.Local, "/", "/tmp"); err != nil {
		return err
	}
	tbl, err := rootfs.Mounts(1)
	if err != nil {
		return err
	}
	for _, m := range tbl.Mounts {
		if m.Point == "/tmp" {
			rep.TmpFSType = m.FSType
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || line != "escape\n" {
		return fmt.Errorf("waiting for the parent: %q, %v", line, err)
	}
	_, rep.Escape, err = rootfs.ChrootEscape(rootfs.Local)
	rep.EscapeSecret = readIfReachable(a.HostSecret)
	return err
}

// childChroot is the weak box: overlay and chroot, then the breakout.
func childChroot(a childArgs, rep *childReport) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	if _, err := rootfs.MountOverlay(rootfs.Local, a.Layers, a.Upper, a.Work, a.Merged); err != nil {
		return err
	}
	if _, err := rootfs.MountDev(rootfs.Local, a.Merged, "/dev"); err != nil {
		return err
	}
	if _, err := rootfs.Chroot(rootfs.Local, a.Merged); err != nil {
		return err
	}
	lookAround(a, rep)
	rep.HostSecret = readIfReachable(a.HostSecret)
	var err error
	_, rep.Escape, err = rootfs.ChrootEscape(rootfs.Local)
	rep.EscapeSecret = readIfReachable(a.HostSecret)
	return err
}

// childRootless is a box in its own user namespace: overlayfs needs
// userxattr there, and mknod of a device is refused, so /dev binds the
// host's nodes.
// childContainerHost is stepbox started inside a container: its own PID
// and mount namespaces, neither of them the initial one, and PID 1 (the
// container's init) sharing its mount namespace. That namespace is still
// the host's as far as stepbox is concerned: a mount there is refused.
func childContainerHost(a childArgs, rep *childReport) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	_, err := rootfs.MountTmpfs(rootfs.Local, a.Merged, "/")
	if !errors.Is(err, rootfs.ErrHostMountNamespace) {
		return fmt.Errorf("MountTmpfs in the container's own namespace = %v, want ErrHostMountNamespace", err)
	}
	return nil
}

func childRootless(a childArgs, rep *childReport) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	for _, f := range []func() (*step.Step, error){
		func() (*step.Step, error) {
			return rootfs.MountOverlay(rootfs.Local, a.Layers, a.Upper, a.Work, a.Merged)
		},
		func() (*step.Step, error) { return rootfs.MountDev(rootfs.Local, a.Merged, "/dev") },
	} {
		st, err := f()
		if err != nil {
			return err
		}
		for _, c := range st.Calls {
			rep.Calls = append(rep.Calls, c.String())
		}
	}
	if err := os.WriteFile(a.Merged+"/dev/null", []byte("gone"), 0); err != nil {
		return err
	}
	if err := os.Remove(a.Merged + "/fileB"); err != nil {
		return err
	}
	snap, err := rootfs.ReadStack(a.Layers, a.Upper, a.Merged, false)
	if err != nil {
		return err
	}
	for _, c := range snap.Changes {
		rep.Changes = append(rep.Changes, c.Kind.String()+" "+c.Path)
	}
	return nil
}

func lookAround(a childArgs, rep *childReport) {
	rep.Hostname = readIfReachable("/etc/hostname")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return
	}
	out, err := exec.Command("/bin/ls", "/").CombinedOutput()
	rep.Ls = string(out)
	if err != nil {
		rep.Ls += err.Error()
	}
	out, err = exec.Command("/bin/mount").CombinedOutput()
	rep.MountFirst, _, _ = strings.Cut(string(out), "\n")
	if err != nil {
		rep.MountFirst += err.Error()
	}
}

func readIfReachable(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return string(b)
}

// child is a running child scenario.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *json.Decoder
}

// startChild re-executes the test binary as scenario name in new
// namespaces (cloneflags); a new user namespace maps root to root.
func startChild(t *testing.T, name string, a childArgs, cloneflags uintptr) *child {
	t.Helper()
	a.HostMountNS = rootfs.HostMountNamespace()
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+name, childArgsEnv+"="+string(data))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	if cloneflags&syscall.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	}
	cmd.Stderr = os.Stderr
	c := &child{cmd: cmd}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = json.NewDecoder(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child %s: %v", name, err)
		}
	})
	return c
}

// report reads the child's next report and fails t if it failed.
func (c *child) report(t *testing.T) childReport {
	t.Helper()
	var rep childReport
	if err := c.out.Decode(&rep); err != nil {
		t.Fatalf("reading the child's report: %v", err)
	}
	if rep.Err != "" {
		t.Fatalf("child: %s", rep.Err)
	}
	return rep
}
