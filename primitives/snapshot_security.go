package primitives

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/devices"
	"stepbox/primitives/inroot"
	"stepbox/primitives/rootfs"
)

// What the security panel reads of a box: the privileges of its PID 1
// from /proc/PID/status, the guarded paths from its mount table, the
// device rules of its cgroup and its user namespace. Each is what the
// kernel says now, never what a step meant to do.

// ProcSecurity is what /proc/PID/status says about a process's
// privileges (proc(5)).
type ProcSecurity struct {
	PID   int    `json:"pid"`
	Comm  string `json:"comm"`
	Start uint64 `json:"start"` // clock ticks after boot: the newest process has the largest
	// The five capability sets, as bit masks (capabilities(7)).
	CapInh uint64 `json:"cap_inh"`
	CapPrm uint64 `json:"cap_prm"`
	CapEff uint64 `json:"cap_eff"`
	CapBnd uint64 `json:"cap_bnd"`
	CapAmb uint64 `json:"cap_amb"`
	// NoNewPrivs: execve can no longer grant privileges (setuid bits,
	// file capabilities): prctl(PR_SET_NO_NEW_PRIVS).
	NoNewPrivs bool `json:"no_new_privs"`
	// Seccomp is the mode: 0 off, 1 strict, 2 filter.
	Seccomp int `json:"seccomp"`
	// SeccompFilters counts the filters installed; -1 where the kernel
	// does not say (the line came in Linux 5.9).
	SeccompFilters int `json:"seccomp_filters"`
}

// ReadProcSecurity reads the privileges of process pid. procfs parses
// the capability sets; the NoNewPrivs and Seccomp lines it leaves out
// are read from the same file here.
func ReadProcSecurity(pid int) (ProcSecurity, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return ProcSecurity{}, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	return readSecurity(p, pid, fmt.Sprintf("/proc/%d/status", pid))
}

// readTaskSecurity reads the privileges of thread tid of process pid:
// capabilities, no_new_privs and seccomp are each thread's own, and a
// thread other than the main one may keep what the main one dropped
// (ut34 F11).
func readTaskSecurity(pid, tid int) (ProcSecurity, error) {
	status := fmt.Sprintf("/proc/%d/task/%d/status", pid, tid)
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return ProcSecurity{}, fmt.Errorf("read %s: %w", status, err)
	}
	p, err := fs.Thread(pid, tid)
	if err != nil {
		return ProcSecurity{}, fmt.Errorf("read %s: %w", status, err)
	}
	return readSecurity(p, pid, status)
}

// readSecurity is ReadProcSecurity of p (a process or a thread), whose
// status file is status.
func readSecurity(p procfs.Proc, pid int, status string) (ProcSecurity, error) {
	st, err := p.NewStatus()
	if err != nil {
		return ProcSecurity{}, fmt.Errorf("read %s: %w", status, err)
	}
	s := ProcSecurity{PID: pid, Comm: st.Name, CapInh: st.CapInh, CapPrm: st.CapPrm, CapEff: st.CapEff, CapBnd: st.CapBnd, CapAmb: st.CapAmb, SeccompFilters: -1}
	data, err := os.ReadFile(status)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", status, err)
	}
	if err := parseStatusSecurity(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", status, err)
	}
	if stat, err := p.Stat(); err == nil {
		s.Start = stat.Starttime
	}
	return s, nil
}

// parseStatusSecurity fills the NoNewPrivs, Seccomp and Seccomp_filters
// lines of a /proc/PID/status file into s.
func parseStatusSecurity(data []byte, s *ProcSecurity) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int
		switch key {
		case "NoNewPrivs":
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				return fmt.Errorf("NoNewPrivs %q: %w", value, err)
			}
			s.NoNewPrivs = n == 1
			continue
		case "Seccomp":
			dst = &s.Seccomp
		case "Seccomp_filters":
			dst = &s.SeccompFilters
		default:
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s %q: %w", key, value, err)
		}
		*dst = n
	}
	return sc.Err()
}

// GuardedPath is one of Docker's masked or read-only paths as the box's
// command process sees it.
type GuardedPath struct {
	Path string `json:"path"`
	// Guard says what covers it: "/dev/null" or "empty ro tmpfs" for a
	// masked path, "ro" for a read-only one; "absent" when the path does
	// not exist in the box (nothing to reach), "" when it is open.
	Guard string `json:"guard"`
	// ByBox: the guard is a mount the box made itself and can unmount
	// (boxMasks): it keeps nothing out of the box's reach.
	ByBox bool `json:"by_box,omitempty"`
}

// Covered reports whether the path is out of the box's reach.
func (g GuardedPath) Covered() bool { return g.Guard != "" && !g.ByBox }

// DeviceList are the device rules of the box's cgroup.
type DeviceList struct {
	Version int    `json:"version"` // the cgroup version of the host: 1 or 2
	Cgroup  string `json:"cgroup"`  // the box's cgroup directory (v1: in the devices hierarchy)
	// Rules are the rules that allow, as devices.list shows them (v1), or
	// as the program stepbox attached was compiled from (v2): "a *:* rwm"
	// allows every device.
	Rules []string `json:"rules,omitempty"`
	// Unread says why the rules could not be read: the box has no cgroup,
	// or a program stepbox did not attach decides on v2.
	Unread string `json:"unread,omitempty"`
}

// SecuritySnapshot is the security panel's input: the box's PID 1 as the
// kernel shows it.
type SecuritySnapshot struct {
	Box    string       `json:"box"`
	PID    int          `json:"pid"` // the process read: PID 1, or the box process before `unshare pid`
	IsInit bool         `json:"is_init"`
	Proc   ProcSecurity `json:"proc"`
	// Next is what the box's next command gets: PID 1's privileges
	// changed by the box's security steps (Box.Security).
	Next     *ProcSecurity `json:"next,omitempty"`
	Masked   []GuardedPath `json:"masked"`
	ReadOnly []GuardedPath `json:"read_only"`
	Devices  DeviceList    `json:"devices"`
	UserNS   bool          `json:"user_ns"` // a user namespace other than the host's
	UIDMap   []IDMapping   `json:"uid_map,omitempty"`
}

// SecuritySnapshot reads the box's PID 1 (its box process before it has
// one): /proc/PID/status, /proc/PID/mountinfo, /proc/PID/cgroup and its
// devices cgroup, /proc/PID/ns/user and uid_map.
//
// The mount table is read until ctx ends: a cut table cannot tell what
// guards a path, so the snapshot fails then, saying how far it got.
func (b *Box) SecuritySnapshot(ctx context.Context) (SecuritySnapshot, error) {
	if err := b.Alive(); err != nil {
		return SecuritySnapshot{}, err
	}
	pid := b.CommandPID()
	s := SecuritySnapshot{Box: b.Name, PID: pid, IsInit: b.InitPID() != 0}
	var err error
	if s.Proc, err = ReadProcSecurity(pid); err != nil {
		return s, fmt.Errorf("box %s: %w", b.Name, err)
	}
	covers, err := coveringMounts(ctx, "/proc", pid, append(slices.Clone(DockerDefault.Masked), DockerDefault.ReadOnly...))
	if err != nil {
		return s, fmt.Errorf("box %s: masked and read-only paths: %w", b.Name, err)
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	for _, p := range DockerDefault.Masked {
		s.Masked = append(s.Masked, GuardedPath{Path: p, Guard: maskGuard(covers[p], root, p)})
	}
	for _, p := range DockerDefault.ReadOnly {
		s.ReadOnly = append(s.ReadOnly, GuardedPath{Path: p, Guard: readOnlyGuard(covers[p], root, p)})
	}
	var guarded []string
	for _, g := range append(slices.Clone(s.Masked), s.ReadOnly...) {
		if g.Guard != "" && g.Guard != "absent" {
			guarded = append(guarded, g.Path)
		}
	}
	byBox, err := b.boxMasks(ctx, guarded)
	if err != nil {
		return s, fmt.Errorf("box %s: %w", b.Name, err)
	}
	for _, list := range [][]GuardedPath{s.Masked, s.ReadOnly} {
		for i := range list {
			_, list[i].ByBox = byBox[list[i].Path]
		}
	}
	if s.Devices, err = b.deviceList(); err != nil {
		return s, fmt.Errorf("box %s: %w", b.Name, err)
	}
	own, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return s, fmt.Errorf("box %s: readlink /proc/%d/ns/user: %w", b.Name, pid, err)
	}
	host, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return s, fmt.Errorf("readlink /proc/self/ns/user: %w", err)
	}
	s.UserNS = own != host
	next := nextCommand(s.Proc, b.Security())
	s.Next = &next
	if s.UIDMap, err = b.UIDMap(); err != nil {
		return s, err
	}
	return s, nil
}

// coveringMounts reads the mount table of pid once, as a stream, and
// returns for each path the mount it resolves through: the last one
// (mountinfo lists parents first, and a mount over another after it)
// whose point is the path or a directory above it. It keeps one mount a
// path, however many the box holds.
func coveringMounts(ctx context.Context, proc string, pid int, paths []string) (map[string]*rootfs.Mount, error) {
	best := map[string]*rootfs.Mount{}
	err := rootfs.ScanMounts(ctx, proc, pid, func(m rootfs.Mount) error {
		var kept *rootfs.Mount // one copy, made only if a path keeps it: &m would put every mount on the heap
		for _, p := range paths {
			if m.Point == p || m.Point == "/" || strings.HasPrefix(p, strings.TrimSuffix(m.Point, "/")+"/") {
				if b := best[p]; b == nil || len(m.Point) >= len(b.Point) {
					if kept == nil {
						c := m
						kept = &c
					}
					best[p] = kept
				}
			}
		}
		return nil
	})
	return best, err
}

func mountReadOnly(m *rootfs.Mount) bool {
	return m != nil && (m.Options == "ro" || strings.HasPrefix(m.Options, "ro,"))
}

// maskGuard says what masks p, given m, the mount p resolves through: a
// mount on p itself that shows the null device (1:3) or an empty
// read-only directory, as runc's maskPath makes them. root is the box's root as the host reaches it (/proc/PID/root).
func maskGuard(m *rootfs.Mount, root, p string) string {
	st, err := inroot.Stat(root, p)
	if errors.Is(err, unix.ENOENT) {
		return "absent"
	}
	if err != nil || m == nil || m.Point != p {
		return ""
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3 {
		return "/dev/null"
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR && mountReadOnly(m) {
		entries, err := inroot.ReadDir(root, p, 1)
		if err == nil && len(entries) == 0 {
			return "empty ro " + m.FSType
		}
	}
	return ""
}

// readOnlyGuard says whether p resolves through m, a read-only mount.
func readOnlyGuard(m *rootfs.Mount, root, p string) string {
	if _, err := inroot.Lstat(root, p); errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	if mountReadOnly(m) {
		return "ro"
	}
	return ""
}

// deviceList is the box's device rules as the security panel shows
// them (CgroupDeviceRules reads them): the rules that allow, in the v1
// syntax; "a *:* rwm" where nothing restricts the box.
func (b *Box) deviceList() (DeviceList, error) {
	if b.Cgroup() == nil {
		return DeviceList{Unread: "no cgroup of its own (`cgroup new`)"}, nil
	}
	d, err := b.CgroupDeviceRules()
	if err != nil && Rootless() && d.Version != 1 {
		// A delegated v2 cgroup's device programs are listed with
		// bpf(BPF_PROG_QUERY), which needs CAP_SYS_ADMIN (or CAP_BPF and
		// CAP_NET_ADMIN) in the host's user namespace: the rest of the
		// panel still says what it can.
		return DeviceList{Version: 2, Unread: "not readable rootless (listing a cgroup's device programs, bpf(BPF_PROG_QUERY), needs CAP_SYS_ADMIN on the host)"}, nil
	}
	if err != nil {
		return DeviceList{}, err
	}
	r := DeviceList{Version: d.Version, Cgroup: d.File}
	if d.Version == 1 {
		r.Cgroup, r.Rules = filepath.Dir(d.File), d.Lines
		return r, nil
	}
	switch {
	case len(d.Progs) == 0:
		// v2 with no device program: the kernel lets the box open any device.
		r.Rules = []string{"a *:* rwm"}
	case d.Rules == nil:
		r.Unread = fmt.Sprintf("%d device programs stepbox did not attach", len(d.Progs))
	default:
		r.Rules = allowLines(d.Rules)
	}
	return r, nil
}

// nextCommand is what a command PID 1 starts next will hold: the box's
// settings (Box.Security) where a step chose them, and otherwise what
// execve passes on from PID 1. no_new_privs and seccomp filters are
// inherited and cannot be undone: the executor adds to them.
func nextCommand(init ProcSecurity, sec Security) ProcSecurity {
	n := ProcSecurity{Comm: "next command", Seccomp: init.Seccomp, SeccompFilters: init.SeccompFilters, NoNewPrivs: init.NoNewPrivs || sec.NoNewPrivs}
	n.CapBnd, n.CapPrm, n.CapEff, n.CapInh, n.CapAmb = sec.Caps.Bounding, sec.Caps.Permitted, sec.Caps.Effective, sec.Caps.Inheritable, sec.Caps.Ambient
	if sec.Seccomp.Source != "" {
		n.Seccomp, n.SeccompFilters = 2, max(init.SeccompFilters, 0)+1
	}
	return n
}

// allowLines are the lines of rules that allow, in order, after the last
// rule that denies every device; without one every device is allowed
// first ("a *:* rwm"), as the kernel does in a new cgroup.
func allowLines(rules []devices.Rule) []string {
	out := []string{"a *:* rwm"}
	for _, r := range rules {
		switch {
		case r.Type == 'a' && !r.Allow:
			out = out[:0]
		case r.Allow:
			out = append(out, r.String())
		}
	}
	return out
}
