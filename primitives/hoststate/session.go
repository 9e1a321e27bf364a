package hoststate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
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
	mounts, err := cgroups.ThreadMounts()
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
		if slices.ContainsFunc(strings.Split(c, "/"), func(e string) bool { return e == own || strings.HasPrefix(e, own+"-") }) {
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

// markedProcesses lists the processes whose STEPBOX_SESSION marker
// starts with prefix ("PID cmdline").
func markedProcesses(prefix string) []string {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range procs {
		if v, ok := sessionMarker(p); ok && strings.HasPrefix(v, prefix) {
			args, _ := p.CmdLine()
			out = append(out, fmt.Sprintf("process %d %s", p.PID, strings.Join(args, " ")))
		}
	}
	return out
}
