package hoststate

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// SessionLeft lists what the stepbox session of process pid, on state
// dir dir, still holds on the host, a line each: mounts at or below dir
// in the host's mount table (its boxes' upper tmpfs), its cgroups
// (stepbox-PID), processes marked with its session, and session state
// under dir/run/sessions. Nothing: it has torn down.
func SessionLeft(dir string, pid int) []string {
	var left []string
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	mounts, err := threadMounts()
	if err != nil {
		left = append(left, "the mount table could not be read: "+err.Error())
	}
	for _, m := range mounts {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			left = append(left, fmt.Sprintf("mount %s (%s from %s)", m.MountPoint, m.FSType, m.Source))
		}
	}
	own := "stepbox-" + strconv.Itoa(pid)
	for _, c := range cgroupDirs("/sys/fs/cgroup", 6) {
		if slices.Contains(strings.Split(c, "/"), own) {
			left = append(left, "cgroup /sys/fs/cgroup/"+c)
		}
	}
	left = append(left, markedProcesses(strconv.Itoa(pid)+"-")...)
	ents, _ := os.ReadDir(filepath.Join(dir, "run", "sessions"))
	for _, e := range ents {
		left = append(left, "session state "+filepath.Join(dir, "run", "sessions", e.Name()))
	}
	return left
}

// threadMounts is the host's mount table as this thread sees it: not
// /proc/self's, the thread group leader's, which an in-process session
// may have left in a box's mount namespace (primitives' hostMounts
// reads it the same way).
func threadMounts() ([]*procfs.MountInfo, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return procfs.GetProcMounts(unix.Gettid())
}

// markedProcesses lists the processes whose STEPBOX_SESSION marker
// starts with prefix ("PID cmdline").
func markedProcesses(prefix string) []string {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range procs {
		env, err := p.Environ()
		if err != nil {
			continue
		}
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "STEPBOX_SESSION="); ok && strings.HasPrefix(v, prefix) {
				args, _ := p.CmdLine()
				out = append(out, fmt.Sprintf("process %d %s", p.PID, strings.Join(args, " ")))
				break
			}
		}
	}
	return out
}
