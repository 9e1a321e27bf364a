package repl

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// The cgroup2 hierarchy's options (nsdelegate, memory_recursiveprot, …)
// are the machine's, and any cgroup2 mount from the host's cgroup
// namespace sets them to what it names: `mount cgroup` in a box without
// a cgroup namespace of its own, and probe's cgroup_escape (which mounts
// the hierarchy to try its parent's cgroup.procs), mounted it with no
// options and turned nsdelegate off for the whole machine (seen on the
// 6.1 VM, whose init mounts it with nsdelegate: the box tests that wrote
// cgroup.freeze at a namespace's root passed only after one of these
// had run). Each now names the options again.
func TestMountCgroupAndProbeLeaveTheHostsCgroup2OptionsAsTheyWere(t *testing.T) {
	needRoot(t)
	hostUnchanged(t) // the cgroup2 mount's options are part of it
	before := v2Options(t)
	if before == "none" {
		t.Skip("no cgroup2 mount on this host")
	}
	out, code := runStepbox(t, searchableTempDir(t), strings.Join([]string{
		"new a",
		"unshare uts ipc net mnt pid",
		"mount overlay base",
		"mount proc",
		"pivot_root",
		"mount cgroup",
		"exec cat /proc/self/mountinfo",
		"probe cgroup_escape",
	}, "\n")+"\n")
	if code != 0 {
		t.Fatalf("stepbox run: exit %d:\n%s", code, out)
	}
	if after := v2Options(t); after != before {
		t.Errorf("the host's cgroup2 options were %q and are %q after the box's `mount cgroup` and probe:\n%s", before, after, out)
	}
	// The box's mount shows them in the kernel's order, not sorted.
	var shown []string
	for _, l := range strings.Split(out, "\n") {
		if _, opts, ok := strings.Cut(l, " - cgroup2 cgroup2 "); ok {
			shown = strings.Split(strings.TrimSpace(opts), ",")
		}
	}
	if before != "" {
		for _, o := range strings.Split(before, ",") {
			if !slices.Contains(shown, o) {
				t.Errorf("the box's cgroup mount shows %q, not the host's option %s:\n%s", shown, o, out)
			}
		}
	}
}

// v2Options is the host's cgroup2 options now, "none" with no cgroup2
// mount.
func v2Options(t *testing.T) string {
	t.Helper()
	mounts, err := procfs.GetMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			return cgroups.V2MountOptions(mounts)
		}
	}
	return "none"
}
