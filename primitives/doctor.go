package primitives

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Check is one line of `stepbox doctor`: what was looked at, what was
// found, and whether stepbox can use it.
type Check struct {
	Name   string
	Found  string
	OK     bool
	Advice string // what to do when not OK: the one command that fixes it
	// Meanwhile is what a learner without sudo can do until an
	// administrator has run Advice.
	Meanwhile string
	// Moot: not needed in this mode (rootless), so neither OK nor a
	// failure; Found says why.
	Moot bool
}

// DoctorHost is the machine doctor reads: its files under Root ("/" for
// the live one, a fixture tree in tests), its kernel release, the process
// whose /proc entries stand for stepbox, and the learner: the user who ran
// `sudo stepbox` (SUDO_UID), or who runs it.
type DoctorHost struct {
	Root    string
	Release string
	PID     int
	EUID    int
	UID     int
	User    string
	// NftProbe asks the running kernel whether nf_tables answers; nil
	// (a fixture tree) reads the module files only.
	NftProbe func() error
}

// LiveDoctorHost is this machine, with this process as stepbox.
func LiveDoctorHost() DoctorHost {
	h := DoctorHost{Root: "/", Release: KernelRelease(), PID: os.Getpid(), EUID: os.Geteuid(), UID: os.Getuid(), NftProbe: nftProbe}
	h.User = userName(h.UID)
	if id, name := os.Getenv("SUDO_UID"), os.Getenv("SUDO_USER"); h.EUID == 0 && id != "" && name != "" {
		if _, err := fmt.Sscan(id, &h.UID); err == nil {
			h.User = name
		}
	}
	return h
}

// path is p (an absolute path) on the host doctor reads.
func (h DoctorHost) path(p string) string { return filepath.Join(h.Root, p) }

// read returns the trimmed contents of p, and whether it could be read.
func (h DoctorHost) read(p string) (string, bool) {
	b, err := os.ReadFile(h.path(p))
	return strings.TrimSpace(string(b)), err == nil
}

func (h DoctorHost) exists(p string) bool {
	_, err := os.Stat(h.path(p))
	return err == nil
}

// proc is the process stepbox stands for, read through procfs.
func (h DoctorHost) proc() (procfs.Proc, error) {
	fs, err := procfs.NewFS(h.path("/proc"))
	if err != nil {
		return procfs.Proc{}, err
	}
	return fs.Proc(h.PID)
}

// live runs check against this machine.
func live(check func(DoctorHost) Check) func() Check {
	return func() Check { return check(LiveDoctorHost()) }
}

// DoctorChecks lists the checks of what stepbox needs as root; other
// files (doctor_cgroup.go) add theirs.
var DoctorChecks = []func() Check{
	live(DoctorHost.checkKernel), live(DoctorHost.checkRoot), live(DoctorHost.checkNamespaces),
	live(DoctorHost.checkTimeNamespace), live(DoctorHost.checkUserNamespaces), live(DoctorHost.checkOverlay),
	live(DoctorHost.checkRootPropagation), live(DoctorHost.checkNftables), live(DoctorHost.checkSystemd),
}

// rootlessChecks follow them: what a normal user without sudo needs.
var rootlessChecks = []func() Check{
	live(DoctorHost.checkRootlessUserNamespaces), live(DoctorHost.checkSubordinateIDs),
	live(DoctorHost.checkIDMapTools), live(DoctorHost.checkRootlessOverlay), live(DoctorHost.checkDelegation),
}

// Doctor runs every check against the live machine.
func Doctor() []Check {
	all := append(append([]func() Check{}, DoctorChecks...), rootlessChecks...)
	out := make([]Check, 0, len(all))
	for _, c := range all {
		out = append(out, c())
	}
	return LiveDoctorHost().forLearner(out)
}

// forLearner words checks for who runs doctor: a normal user (no sudo,
// perhaps never) is told what to ask an administrator for and what works
// meanwhile, and a cgroup parent rootless cannot use is not called OK
// (ut26 F1).
func (h DoctorHost) forLearner(checks []Check) []Check {
	if h.EUID == 0 {
		return checks
	}
	delegated := true
	for _, c := range checks {
		if c.Name == delegationCheck && !c.OK {
			delegated = false
		}
	}
	out := make([]Check, 0, len(checks))
	for _, c := range checks {
		if c.Name == "cgroup parent" && !delegated {
			c = Check{Name: c.Name, Moot: true, Found: "not used rootless: no cgroup is delegated to " + h.User + " (see " + delegationCheck + "); as root: " + c.Found}
		}
		if !c.OK && !c.Moot && strings.Contains(c.Advice, "sudo ") {
			c.Advice = "needs root: ask your administrator (or, with sudo, do it yourself): " + c.Advice
			if c.Meanwhile != "" {
				c.Advice += "; meanwhile: " + c.Meanwhile
			}
		}
		out = append(out, c)
	}
	return out
}

// newerKernel is the advice for a kernel that is too old for a feature.
func newerKernel(version, what string) string {
	return fmt.Sprintf("%s needs Linux %s or newer: boot a newer kernel (Debian 12, Ubuntu 22.04 and Fedora 36 ship one; on Debian: sudo apt install linux-image-amd64)", what, version)
}

func (h DoctorHost) checkKernel() Check {
	if !ReleaseAtLeast(h.Release, "5.11") {
		return Check{Name: "kernel", Found: h.Release, OK: false, Advice: newerKernel("5.11", "stepbox")}
	}
	return Check{Name: "kernel", Found: h.Release, OK: true}
}

func (h DoctorHost) checkRoot() Check {
	if h.EUID == 0 {
		found := "root"
		if p, err := h.proc(); err == nil {
			if st, err := p.NewStatus(); err == nil && st.CapEff&(1<<unix.CAP_SYS_RESOURCE) == 0 {
				found += " without CAP_SYS_RESOURCE (a sandboxed root): a box's PID 1 cannot ask the OOM killer to take it last, " +
					"so the commands it starts get oom_score_adj 1000 instead"
			}
		}
		return Check{Name: "privileges", Found: found, OK: true}
	}
	return Check{Name: "privileges", OK: true,
		Found: fmt.Sprintf("uid %d, not root: stepbox runs rootless: every box gets a user namespace of its own, and the steps that change the host (bridge, nft, devices, cgroups nobody delegated) are refused, each saying why; with sudo, every step: sudo stepbox", h.EUID)}
}

func (h DoctorHost) checkNamespaces() Check {
	var missing []string
	for _, t := range NamespaceTypes {
		if !h.exists(fmt.Sprintf("/proc/%d/ns/%s", h.PID, t.Proc)) {
			missing = append(missing, t.Name)
		}
	}
	if len(missing) == 0 {
		return Check{Name: "namespaces", Found: "all eight: " + strings.Join(NamespaceTypeNames(), " "), OK: true}
	}
	return Check{Name: "namespaces", Found: "missing: " + strings.Join(missing, " "), OK: false,
		Advice: "this kernel was built without those namespace types, and their lessons fail: boot a distribution's stock kernel"}
}

// checkTimeNamespace: time namespaces came in Linux 5.6 (CONFIG_TIME_NS).
// Before 6.3 the kernel refuses clone(CLONE_VM) while a new one waits for
// children; the C executor forks without it, so 5.6 is enough.
func (h DoctorHost) checkTimeNamespace() Check {
	if !ReleaseAtLeast(h.Release, "5.6") {
		return Check{Name: "unshare time", Found: "Linux " + h.Release + " has no time namespaces", OK: false, Advice: newerKernel("5.6", "`unshare time`")}
	}
	if !h.exists(fmt.Sprintf("/proc/%d/ns/time", h.PID)) {
		return Check{Name: "unshare time", Found: "no /proc/PID/ns/time: the kernel was built without CONFIG_TIME_NS", OK: false,
			Advice: "boot a distribution's stock kernel, which has time namespaces"}
	}
	return Check{Name: "unshare time", Found: "time namespaces (Linux 5.6 or newer)", OK: true}
}

func (h DoctorHost) checkOverlay() Check {
	f, err := os.Open(h.path("/proc/filesystems"))
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasSuffix(sc.Text(), "\toverlay") {
				return Check{Name: "overlayfs", Found: "available", OK: true}
			}
		}
	}
	if h.kernelModule("overlay") {
		return Check{Name: "overlayfs", Found: "a module, loaded on first use", OK: true}
	}
	return Check{Name: "overlayfs", Found: "not in /proc/filesystems, and no overlay module", OK: false,
		Advice: "`mount overlay` needs it: sudo modprobe overlay"}
}

// kernelModule reports whether module name is loaded or built in
// (/sys/module/NAME) or installed for the running kernel.
func (h DoctorHost) kernelModule(name string) bool {
	if h.exists("/sys/module/" + name) {
		return true
	}
	found := false
	for _, dir := range []string{"/lib/modules/", "/usr/lib/modules/"} {
		filepath.WalkDir(h.path(dir+h.Release+"/kernel"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), name+".ko") {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		if found {
			return true
		}
	}
	return false
}

func (h DoctorHost) checkRootPropagation() Check {
	const mountProc = "doctor reads the mount table from /proc: sudo mount -t proc proc /proc"
	p, err := h.proc()
	if err != nil {
		return Check{Name: "root propagation", Found: err.Error(), OK: false, Advice: mountProc}
	}
	mounts, err := p.MountInfo()
	if err != nil {
		return Check{Name: "root propagation", Found: err.Error(), OK: false, Advice: mountProc}
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
	return Check{Name: "root propagation", Found: "no / in mountinfo", OK: false, Advice: mountProc}
}

// checkNftables: the net steps write nf_tables rules over netlink (no nft
// binary needed), lesson 7 reads them back with `nft`. A built-in
// nf_tables without parameters has no /sys/module entry, so on the live
// host the kernel is asked (NftProbe) before the files are read.
func (h DoctorHost) checkNftables() Check {
	const name = "nftables"
	if h.EUID != 0 {
		return Check{Name: name, Moot: true,
			Found: "not needed rootless: the net steps that write nf_tables rules (`net nat`, `net publish`) change the host's and are refused rootless; `sudo stepbox doctor` checks it for root"}
	}
	noNft := Check{Name: name, Found: "no nf_tables in this kernel", OK: false,
		Advice: "`net nat` and `net publish` need it: sudo modprobe nf_tables (or boot a kernel built with CONFIG_NF_TABLES)"}
	var found string
	var err error = unix.EPERM
	if h.NftProbe != nil {
		err = h.NftProbe()
	}
	switch {
	case err == nil:
		found = "nf_tables answers"
	case !errors.Is(err, unix.EPERM):
		noNft.Found = "nf_tables does not answer: " + err.Error()
		return noNft
	case h.exists("/sys/module/nf_tables"):
		found = "nf_tables loaded"
	case h.kernelModule("nf_tables"):
		found = "nf_tables, a module loaded on first use"
	case h.NftProbe != nil:
		return Check{Name: name, Found: "no nf_tables module file, and only root may ask the kernel whether it has one built in", OK: false,
			Advice: "sudo stepbox doctor"}
	default:
		return noNft
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"} {
		if h.exists(p) {
			return Check{Name: name, Found: found + "; nft is " + p, OK: true}
		}
	}
	return Check{Name: name, Found: found + "; no nft command, which lesson 7 uses to show the rules", OK: false,
		Advice: installAdvice(h, "nftables", "nftables")}
}

// nftProbe asks the kernel for its IPv4 tables over netlink, which needs
// nf_tables (the kernel loads the module on the request) and
// CAP_NET_ADMIN: EPERM says nothing about the kernel.
func nftProbe() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	return err
}
