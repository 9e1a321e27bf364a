package primitives

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Check is one line of `stepbox doctor`: what was looked at, what was
// found, and whether stepbox can use it.
type Check struct {
	Name   string
	Found  string
	OK     bool
	Advice string // what to do when not OK
}

// DoctorChecks lists every check `stepbox doctor` runs; other packages
// (cgroups) add theirs.
var DoctorChecks = []func() Check{
	checkKernel, checkRoot, checkNamespaces, checkUserNamespaces, checkOverlay, checkRootPropagation,
}

// Doctor runs every check against the live kernel.
func Doctor() []Check {
	out := make([]Check, 0, len(DoctorChecks))
	for _, c := range DoctorChecks {
		out = append(out, c())
	}
	return out
}

func checkKernel() Check {
	rel := KernelRelease()
	switch {
	case !ReleaseAtLeast(rel, "5.11"):
		return Check{Name: "kernel", Found: rel, OK: false,
			Advice: "Linux 5.11 or newer is needed for overlay inside a user namespace and for time namespaces"}
	case !ReleaseAtLeast(rel, "6.3"):
		return Check{Name: "kernel", Found: rel + " (`unshare time` needs 6.3: before it the kernel refuses the forks of a Go program once a time namespace waits)", OK: true}
	}
	return Check{Name: "kernel", Found: rel, OK: true}
}

func checkRoot() Check {
	if os.Geteuid() == 0 {
		found := "root"
		if p, err := procfs.Self(); err == nil {
			if st, err := p.NewStatus(); err == nil && st.CapEff&(1<<unix.CAP_SYS_RESOURCE) == 0 {
				found += " without CAP_SYS_RESOURCE (a sandboxed root): a box's PID 1 cannot ask the OOM killer to take it last, " +
					"so the commands it starts get oom_score_adj 1000 instead"
			}
		}
		return Check{Name: "privileges", Found: found, OK: true}
	}
	return Check{Name: "privileges", Found: fmt.Sprintf("uid %d", os.Geteuid()), OK: false,
		Advice: "without root, only boxes made with `new NAME --user` can unshare namespaces; mounts and cgroups need root (run `sudo stepbox`)"}
}

func checkNamespaces() Check {
	var missing []string
	for _, t := range NamespaceTypes {
		if _, err := os.Stat("/proc/self/ns/" + t.Proc); err != nil {
			missing = append(missing, t.Name)
		}
	}
	if len(missing) == 0 {
		return Check{Name: "namespaces", Found: "all eight: " + strings.Join(NamespaceTypeNames(), " "), OK: true}
	}
	return Check{Name: "namespaces", Found: "missing: " + strings.Join(missing, " "), OK: false,
		Advice: "this kernel was built without those namespace types; their lessons will fail"}
}

func checkUserNamespaces() Check {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	n := strings.TrimSpace(string(b))
	if err != nil || n == "0" {
		return Check{Name: "user namespaces", Found: "disabled (max_user_namespaces = " + n + ")", OK: false,
			Advice: "`new --user` needs user namespaces: sysctl user.max_user_namespaces=15000"}
	}
	found := "max_user_namespaces = " + n
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil && strings.TrimSpace(string(b)) == "1" {
		return Check{Name: "user namespaces", Found: found + "; AppArmor restricts unprivileged ones", OK: os.Geteuid() == 0,
			Advice: "as a normal user, `new --user` is refused by AppArmor: sysctl kernel.apparmor_restrict_unprivileged_userns=0"}
	}
	return Check{Name: "user namespaces", Found: found, OK: true}
}

func checkOverlay() Check {
	f, err := os.Open("/proc/filesystems")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasSuffix(sc.Text(), "\toverlay") {
				return Check{Name: "overlayfs", Found: "available", OK: true}
			}
		}
	}
	return Check{Name: "overlayfs", Found: "not in /proc/filesystems", OK: false,
		Advice: "load it with `modprobe overlay` (it is also loaded on first use when the module exists)"}
}

func checkRootPropagation() Check {
	mounts, err := procfs.GetProcMounts(os.Getpid())
	if err != nil {
		return Check{Name: "root propagation", Found: err.Error(), OK: false}
	}
	for _, m := range mounts {
		if m.MountPoint != "/" {
			continue
		}
		if _, shared := m.OptionalFields["shared"]; shared {
			return Check{Name: "root propagation", Found: "/ is shared (as systemd makes it): stepbox makes each box's mounts slave before pivot_root, which refuses a shared parent", OK: true}
		}
		return Check{Name: "root propagation", Found: "/ is private", OK: true}
	}
	return Check{Name: "root propagation", Found: "no / in mountinfo", OK: false}
}
