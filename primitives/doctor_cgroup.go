package primitives

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

func init() {
	DoctorChecks = append(DoctorChecks, checkCgroupMode, checkCgroupParent)
}

// hostCgroups opens the host's cgroups with this process as the session.
func hostCgroups() (cgroups.Hierarchy, error) {
	fs, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		return nil, err
	}
	return cgroups.Open(cgroups.DefaultRoot, fs, os.Getpid())
}

func checkCgroupMode() Check {
	h, err := hostCgroups()
	if err != nil {
		return Check{Name: "cgroup mode", Found: err.Error(), OK: false,
			Advice: "stepbox needs cgroup v2 or v1 mounted at " + cgroups.DefaultRoot + " for `cgroup …`; the other commands work without"}
	}
	found := fmt.Sprintf("%s, controllers: %s", h.Mode(), strings.Join(h.Controllers(), " "))
	if ro := readOnlyCgroupMounts(); len(ro) > 0 {
		return Check{Name: "cgroup mode", Found: found + "; mounted read-only: " + strings.Join(ro, " "), OK: false,
			Advice: "stepbox cannot make cgroups here (a container started without --privileged mounts them read-only); the other commands work. Run stepbox on the host, or in a container with a writable cgroup tree (docker run --privileged --cgroupns=private)"}
	}
	return Check{Name: "cgroup mode", Found: found, OK: true}
}

// readOnlyCgroupMounts lists the cgroup mounts under cgroups.DefaultRoot
// that are mounted read-only.
func readOnlyCgroupMounts() []string {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return nil
	}
	var ro []string
	for _, m := range mounts {
		if (m.FSType == "cgroup" || m.FSType == "cgroup2") && strings.HasPrefix(m.MountPoint, cgroups.DefaultRoot) {
			if _, ok := m.Options["ro"]; ok {
				ro = append(ro, m.MountPoint)
			}
		}
	}
	return ro
}

// checkCgroupParent says where the session's parent cgroup would go, by
// which rule and why, and what stepbox would change in the host's cgroups
// above it (cgroup v2: controllers switched on on the way down).
func checkCgroupParent() Check {
	h, err := hostCgroups()
	if err != nil {
		return Check{Name: "cgroup parent", Found: err.Error(), OK: false}
	}
	pl, err := h.Place(CgroupParentOverride)
	if err != nil {
		advice := "give --cgroup-parent naming a cgroup without processes; the boxes still run, without cgroup steps"
		if CgroupParentOverride != "" {
			advice = "stepbox refuses to start with this --cgroup-parent: name a cgroup that exists in every hierarchy stepbox uses and holds no processes (cgroup v2); stepbox does not create it"
		} else if errors.Is(err, cgroups.ErrNoPlace) {
			advice = "this is a container whose top cgroup holds its processes: start it with an init that moves itself into a child cgroup (systemd does, into init.scope), or give --cgroup-parent naming a cgroup without processes; the boxes still run, without cgroup steps"
		}
		return Check{Name: "cgroup parent", Found: err.Error(), OK: false, Advice: advice}
	}
	var where []string
	for _, d := range pl.Dirs {
		where = append(where, d.Cgroup)
	}
	found := fmt.Sprintf("under %s (rule %s): %s", strings.Join(uniq(where), ", "), pl.Rule, pl.Reason)
	if h.Version() == 2 {
		found += "; its boxes get " + strings.Join(pl.Controllers, " ")
	}
	if c := pl.HostChanges(); c != "" {
		found += "; " + c
	}
	if pl.Scope != "" {
		sd := cgroups.HostSystemd()
		if sd == nil {
			return Check{Name: "cgroup parent", Found: found + "; but systemd does not run this host", OK: false}
		}
		v, err := sd.Ping()
		if err != nil {
			advice := "start the system bus: `sudo systemctl start dbus` (Debian/Ubuntu: `sudo apt install dbus`)"
			if sd.Bus() == "user" {
				advice = "rootless, stepbox asks your user manager: install `dbus-user-session` and log in again, or run `loginctl enable-linger $USER`"
			}
			return Check{Name: "cgroup parent", Found: found + "; but the " + sd.Bus() + " bus does not answer: " + err.Error(), OK: false,
				Advice: advice + "; until then the boxes run without cgroup steps"}
		}
		found += fmt.Sprintf("; systemd %s answers on the %s bus", v, sd.Bus())
	}
	return Check{Name: "cgroup parent", Found: found, OK: true}
}

// uniq drops repeats, keeping the first of each: on v1 the parent
// usually has one path in every hierarchy.
func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
