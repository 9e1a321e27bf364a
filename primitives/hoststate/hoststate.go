// Package hoststate captures what stepbox promises never to change on the
// host: the mount table, the hostname, the cgroup tree, the network links
// and the set of stepbox processes. Tests compare a capture before and after.
package hoststate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// State is one capture.
type State struct {
	Mounts    []string // mount point, fs type and source of every host mount; the cgroup2 hierarchy's options too
	Hostname  string
	Cgroups   []string // stepbox's directories under /sys/fs/cgroup
	Links     []string // network interfaces of the host
	Processes []string // processes whose command line names a stepbox entry point
}

// Capture reads the host's state now.
func Capture() (State, error) {
	var s State
	mounts, err := procfs.GetMounts()
	if err != nil {
		return s, fmt.Errorf("read host mounts: %w", err)
	}
	for _, m := range mounts {
		line := fmt.Sprintf("%s %s %s", m.MountPoint, m.FSType, m.Source)
		if m.FSType == "cgroup2" {
			// One hierarchy's, set by any mount of it from the host's
			// cgroup namespace (nsdelegate, …): a box's or a probe's
			// mount once turned them off for the machine.
			line += " " + cgroups.V2MountOptions([]*procfs.MountInfo{m})
		}
		s.Mounts = append(s.Mounts, line)
	}
	sort.Strings(s.Mounts)
	if s.Hostname, err = os.Hostname(); err != nil {
		return s, err
	}
	s.Cgroups = nil
	// Only stepbox's own cgroups: the rest of the tree belongs to whatever
	// else runs on the machine and comes and goes on its own.
	for _, c := range cgroupDirs("/sys/fs/cgroup", 6) {
		if strings.Contains(c, "stepbox") && !othersCgroup(c) {
			s.Cgroups = append(s.Cgroups, c)
		}
	}
	ifs, err := os.ReadDir("/sys/class/net")
	if err == nil {
		for _, i := range ifs {
			s.Links = append(s.Links, i.Name())
		}
	}
	s.Processes = StepboxProcesses()
	return s, nil
}

func cgroupDirs(root string, depth int) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." && strings.Count(rel, "/") >= depth {
			return fs.SkipDir
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

// StepboxProcesses lists running processes that are box processes, PID 1s
// or `enter` helpers of any stepbox session ("PID cmdline").
func StepboxProcesses() []string {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range procs {
		args, err := p.CmdLine()
		if err != nil || len(args) < 2 {
			continue
		}
		// A box process and its PID 1 retitle themselves "stepbox-box NAME"
		// and "stepbox-init NAME" (executor.c, title_self).
		ours := args[0] == "stepbox" && strings.HasPrefix(args[1], "__") || args[0] == "stepbox-box" || args[0] == "stepbox-init"
		if ours && !othersProcess(p) {
			out = append(out, fmt.Sprintf("%d %s", p.PID, strings.Join(args, " ")))
		}
	}
	return out
}

// Diff describes how after differs from before, or returns "".
func Diff(before, after State) string {
	var b strings.Builder
	list := func(name string, x, y []string) {
		added, removed := setDiff(x, y), setDiff(y, x)
		for _, a := range added {
			fmt.Fprintf(&b, "%s added: %s\n", name, a)
		}
		for _, r := range removed {
			fmt.Fprintf(&b, "%s removed: %s\n", name, r)
		}
	}
	list("mount", after.Mounts, before.Mounts)
	if before.Hostname != after.Hostname {
		fmt.Fprintf(&b, "hostname changed: %q -> %q\n", before.Hostname, after.Hostname)
	}
	list("cgroup", after.Cgroups, before.Cgroups)
	list("link", after.Links, before.Links)
	list("process", after.Processes, before.Processes)
	return b.String()
}

// setDiff returns the elements of x not in y.
func setDiff(x, y []string) []string {
	in := map[string]int{}
	for _, v := range y {
		in[v]++
	}
	var out []string
	for _, v := range x {
		if in[v] > 0 {
			in[v]--
			continue
		}
		out = append(out, v)
	}
	return out
}

// Other test runs may share the machine (several packages' tests, or
// other developers'): what belongs to a live stepbox session that is not
// this process or one of its descendants is theirs, not ours to judge.
// Whatever belongs to a dead session counts: it has leaked.

var parentCgroup = regexp.MustCompile(`(^|/)stepbox-([0-9]+)(/|$)`)

func othersCgroup(rel string) bool {
	m := parentCgroup.FindStringSubmatch(rel)
	if m == nil {
		return false
	}
	pid, _ := strconv.Atoi(m[2])
	return othersSession(pid)
}

func othersProcess(p procfs.Proc) bool {
	v, ok := sessionMarker(p)
	if !ok {
		return false
	}
	pidS, _, _ := strings.Cut(v, "-")
	pid, _ := strconv.Atoi(pidS)
	return othersSession(pid)
}

// sessionMarker is the value of p's STEPBOX_SESSION marker, if it has one.
func sessionMarker(p procfs.Proc) (string, bool) {
	env, err := p.Environ()
	if err != nil {
		return "", false
	}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "STEPBOX_SESSION="); ok {
			return v, true
		}
	}
	return "", false
}

// othersSession reports whether pid is a live process outside this
// process's tree of descendants.
func othersSession(pid int) bool {
	self := os.Getpid()
	for hops := 0; pid > 1 && hops < 64; hops++ {
		if pid == self {
			return false
		}
		p, err := procfs.NewProc(pid)
		if err != nil {
			return false // dead: its leftovers are leaks
		}
		st, err := p.Stat()
		if err != nil {
			return false
		}
		pid = st.PPID
	}
	return true
}
