package cgroups

import (
	"sort"
	"strings"

	"github.com/prometheus/procfs"
)

// V2MountOptions is the data to mount cgroup2 with so that the mount
// changes nothing of the host: the options of the cgroup2 hierarchy as it
// is mounted now (nsdelegate, memory_recursiveprot, …), "" where no
// cgroup2 mount shows them. Those options are not a mount's own: they
// are the one v2 hierarchy's, and a mount made from the host's cgroup
// namespace sets them to exactly the ones it names (the kernel's
// apply_cgroup_root_flags). A plain `mount -t cgroup2` there turned
// nsdelegate off for the whole machine, which then let every delegated
// subtree's owner (a rootless container, a systemd user session) write
// the files at its own root that delegation keeps from it
// (cgroup-v2.rst, "Delegation Containment"). mounts is a mount table of
// a process in the host's mount namespace.
func V2MountOptions(mounts []*procfs.MountInfo) string {
	for _, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		var opts []string
		for k, v := range m.SuperOptions {
			if k == "rw" || k == "ro" {
				continue
			}
			if v != "" {
				k += "=" + v
			}
			opts = append(opts, k)
		}
		sort.Strings(opts)
		return strings.Join(opts, ",")
	}
	return ""
}
