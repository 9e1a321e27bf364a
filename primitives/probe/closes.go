package probe

// closers names, for each probe and the way it found the hole open, the
// steps that close it; its keys are also every way a probe may report
// itself open, so a report that names another is refused (the box runs
// the probe and may forge its output).
var closers = map[string]map[string]string{
	"disk":              {"read": "cgroup devices docker (the open is refused); a user namespace (mknod is refused)", "kmsg": "cgroup devices docker (no c 1:11); caps docker (no CAP_SYSLOG); a user namespace"},
	"proc_root":         {"pid1": "unshare pid; caps docker (no CAP_SYS_PTRACE); a user namespace", "pid": "unshare pid; caps docker (no CAP_SYS_PTRACE); a user namespace", "hostroot": "pivot_root (a root of the box's own)", "cwd": "end that process (`exec kill PID`) and start it again after pivot_root, which moves only the processes whose cwd was the old root", "procmount": "`exec umount` that proc mount (before pivot_root, or after: it came along); a proc of the box's own is mounted after `unshare pid`"},
	"release_agent":     {"mounted": "read-only cgroupfs; unshare cgroup", "mount": "unshare cgroup; caps docker (no CAP_SYS_ADMIN to mount); a user namespace"},
	"open_by_handle_at": {"read": "caps docker (no CAP_DAC_READ_SEARCH); a user namespace", "cap": "caps docker (no CAP_DAC_READ_SEARCH); a user namespace"},
	"proc_sys":          {"write": "mount mask (/proc/sys read-only); a user namespace"},
	"sys":               {"write": "mount sys (read-only, as Docker mounts it); a user namespace"},
	"remount":           {"remount": "caps docker (no CAP_SYS_ADMIN); seccomp docker; a user namespace (the flags are locked)"},
	"finit_module":      {"load": "caps docker (no CAP_SYS_MODULE); seccomp docker; a user namespace"},
	"dmesg":             {"syslog": "caps docker (no CAP_SYSLOG); seccomp docker", "kmsg": "cgroup devices docker (no /dev/kmsg); caps docker"},
	"kallsyms":          {"read": "caps docker (no CAP_SYSLOG); a user namespace"},
	"ptrace":            {"mem": "unshare pid; caps docker (no CAP_SYS_PTRACE); a user namespace", "init": "caps docker (no CAP_SYS_PTRACE); a user namespace"},
	"cgroup_escape": {"mounted": "read-only cgroupfs; unshare cgroup", "mount": "unshare cgroup; caps docker (no CAP_SYS_ADMIN to mount); a user namespace",
		"nsroot":    "`unshare cgroup` again, AFTER `cgroup attach`: a nested cgroup namespace rooted at the box's cgroup; then a cgroup mount made after it",
		"mountroot": "`mount cgroup` again, after `unshare cgroup` AFTER `cgroup attach`: the new mount covers this one, made while the namespace's root was the host's"},
	"tiocsti": {"inject": "caps docker (no CAP_SYS_ADMIN); a user namespace — box commands have no controlling terminal of the learner's (setsid), and stepbox gives them pipes or a pty of their own",
		"terminal": "no step: stepbox gives every box command pipes, or a pty of its own for `sh` and `enter`, never the learner's terminal"},
}

// closedVias are the ways a probe may report itself closed.
var closedVias = map[string]bool{
	"nodisk": true, "mknod": true, "open": true, "nofile": true, "none": true, "nomount": true,
	"cap": true, "write": true, "unshare": true, "remount": true, "load": true, "syslog": true,
	"read": true, "mem": true, "nov1": true, "mount": true, "cgroupns": true,
	"mounted": true, "root": true, "nomodules": true,
	"inject": true, "noterminal": true, "own": true,
}

// unknownVias are the ways a probe may report itself unknown. The
// session's own, BoxMask and Traced, are not: the probe may not claim them.
var unknownVias = map[string]bool{"notkernel": true}

// BoxMask is the way the session reports a probe unknown whose files a
// mount of the box's own masks, which the box can unmount.
const BoxMask = "boxmask"

// Traced is the way the session reports every probe unknown when it saw a
// process trace the probe, or could not look (box_probe_trace.go).
const Traced = "traced"

// Closes returns the steps that close probe name's hole, found open by
// via, and whether the pair is one a probe reports.
func Closes(name, via string) (string, bool) {
	s, ok := closers[name][via]
	return s, ok
}

// Valid reports whether r is a result this package's probes can give.
func Valid(r Result) bool {
	if !Known(r.Name) {
		return false
	}
	switch r.State {
	case Open:
		_, ok := Closes(r.Name, r.Via)
		return ok
	case Closed:
		return closedVias[r.Via]
	case Unknown:
		return unknownVias[r.Via]
	}
	return false
}
