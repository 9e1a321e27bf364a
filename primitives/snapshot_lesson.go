package primitives

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// Readers of live state the lessons' checks need beyond the panels'
// snapshots: the name the box's UTS namespace holds, the TCP ports its
// network namespace listens on, its root directory and /proc, its clock
// offsets, its uid map, and the files its layers hold more than once.

// UTSName is the hostname of the box's UTS namespace, read inside it, and
// the host's.
type UTSName struct {
	Box  string `json:"box"`
	Host string `json:"host"`
}

// UTSName reads the hostname inside the box with uname(2), so a name set
// any way at all (`hostname`, `exec hostname NAME`) shows.
func (b *Box) UTSName() (UTSName, error) {
	var u UTSName
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		return u, fmt.Errorf("uname: %w", err)
	}
	u.Host = unix.ByteSliceToString(host.Nodename[:])
	_, err := b.withKernel(func(x *executor) (*step.Step, error) {
		var err error
		u.Box, err = x.Nodename()
		return nil, err
	})
	if err != nil {
		return u, fmt.Errorf("box %s: uname: %w", b.Name, err)
	}
	return u, nil
}

// CgroupView reads /proc/self/cgroup inside the box, as its own cgroup
// namespace renders it: after `unshare cgroup` the paths start at the
// cgroup the box was in when it unshared (cgroup_namespaces(7)).
func (b *Box) CgroupView() ([]procfs.Cgroup, error) {
	var view []procfs.Cgroup
	_, err := b.withKernel(func(x *executor) (*step.Step, error) {
		var err error
		view, err = x.cgroupView()
		return nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("box %s: read /proc/self/cgroup: %w", b.Name, err)
	}
	return view, nil
}

// Listener is a TCP socket listening in the box's network namespace.
type Listener struct {
	Addr  string `json:"addr"`
	Port  int    `json:"port"`
	Inode uint64 `json:"inode"`
}

// tcpListen is TCP_LISTEN in the st column of /proc/net/tcp (include/net/tcp_states.h).
const tcpListen = 10

// Listeners reads the listening TCP sockets (IPv4 and IPv6) of the network
// namespace the box's commands run in.
func (b *Box) Listeners() ([]Listener, error) {
	out, err := ListenersOf(b.CommandPID())
	if err != nil {
		return nil, fmt.Errorf("box %s: %w", b.Name, err)
	}
	return out, nil
}

// ListenersOf reads the listening TCP sockets (IPv4 and IPv6) of pid's
// network namespace: /proc/PID/net/tcp shows the namespace of PID, not
// the reader's (proc(5)).
func ListenersOf(pid int) ([]Listener, error) {
	pfs, err := procfs.NewFS(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return nil, err
	}
	var out []Listener
	for _, read := range []func() (procfs.NetTCP, error){pfs.NetTCP, pfs.NetTCP6} {
		lines, err := read()
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, fmt.Errorf("read /proc/%d/net/tcp: %w", pid, err)
		}
		for _, l := range lines {
			if l.St == tcpListen {
				out = append(out, Listener{Addr: l.LocalAddr.String(), Port: int(l.LocalPort), Inode: l.Inode})
			}
		}
	}
	return out, nil
}

// RootView is the box's root directory as the kernel names it to the host,
// and what its /proc lists.
type RootView struct {
	// Link is readlink(/proc/PID/root): "/" when the root is the root of
	// the process's mount namespace (never changed, or after pivot_root),
	// a host path after chroot.
	Link string `json:"link"`
	// Procs are the PIDs the box's /proc lists: the processes of the PID
	// namespace whose proc filesystem is mounted there. Nil when nothing is.
	Procs []int `json:"procs,omitempty"`
}

// RootView reads the root directory of the box's command process and the
// PIDs in its /proc.
func (b *Box) RootView() (RootView, error) {
	pid := b.CommandPID()
	p, err := procfs.NewProc(pid)
	if err != nil {
		return RootView{}, fmt.Errorf("box %s: %w", b.Name, err)
	}
	var v RootView
	if v.Link, err = p.RootDir(); err != nil {
		return v, fmt.Errorf("box %s: readlink /proc/%d/root: %w", b.Name, pid, err)
	}
	ents, err := inroot.ReadDir(fmt.Sprintf("/proc/%d/root", pid), "/proc", maxProcs)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return v, fmt.Errorf("box %s: read its /proc: %w", b.Name, err)
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			v.Procs = append(v.Procs, n)
		}
	}
	sort.Ints(v.Procs)
	return v, nil
}

// maxProcs bounds what RootView lists of the box's /proc.
const maxProcs = 100_000

// ClockOffsets are the offsets of the time namespace the box's commands
// get, from /proc/PID/timens_offsets of its command process, which shows
// the namespace of the process's children (time_namespaces(7)).
type ClockOffsets struct {
	Monotonic time.Duration `json:"monotonic"`
	Boottime  time.Duration `json:"boottime"`
}

// ClockOffsets reads the box's clock offsets; zero without a time namespace.
func (b *Box) ClockOffsets() (ClockOffsets, error) {
	path := fmt.Sprintf("/proc/%d/timens_offsets", b.CommandPID())
	f, err := os.Open(path)
	if err != nil {
		return ClockOffsets{}, fmt.Errorf("box %s: %w", b.Name, err)
	}
	defer f.Close()
	var c ClockOffsets
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var clock string
		var sec, nsec int64
		if _, err := fmt.Sscan(sc.Text(), &clock, &sec, &nsec); err != nil {
			return c, fmt.Errorf("box %s: %s: %q: %w", b.Name, path, sc.Text(), err)
		}
		d := time.Duration(sec)*time.Second + time.Duration(nsec)
		switch clock {
		case "monotonic":
			c.Monotonic = d
		case "boottime":
			c.Boottime = d
		}
	}
	return c, sc.Err()
}

// IDMapping is one line of /proc/PID/uid_map: IDs Inside… of the process's
// user namespace are IDs Outside… of its parent's (user_namespaces(7)).
type IDMapping struct {
	Inside  int64 `json:"inside"`
	Outside int64 `json:"outside"`
	Count   int64 `json:"count"`
}

// UIDMap reads the uid map of the box process's user namespace.
func (b *Box) UIDMap() ([]IDMapping, error) {
	path := fmt.Sprintf("/proc/%d/uid_map", b.PID())
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("box %s: %w", b.Name, err)
	}
	var out []IDMapping
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m IDMapping
		if _, err := fmt.Sscan(line, &m.Inside, &m.Outside, &m.Count); err != nil {
			return nil, fmt.Errorf("box %s: %s: %q: %w", b.Name, path, line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Shadow is a file that more than one lower layer of the box's stack
// holds: the topmost wins in the merged view, the others stay as they are,
// hidden.
type Shadow struct {
	Path   string   `json:"path"`
	Layers []string `json:"layers"` // bottom to top
}

// Shadows walks the box's lower layers and lists the files (anything but
// directories and whiteouts) that two or more of them hold.
func (b *Box) Shadows() ([]Shadow, error) {
	f := b.FS()
	if f.Merged == "" {
		return nil, nil
	}
	holders := map[string][]string{}
	for _, l := range f.Layers {
		// An image's layer: bounded, and what cannot be read is left out
		// (a lesson's hint, not a panel that must be whole).
		_, err := inroot.Walk(l.Dir, inroot.WalkLimits, func(p string, d fs.DirEntry, _ error) error {
			if d.IsDir() {
				return nil
			}
			if d.Type()&fs.ModeCharDevice != 0 && isWhiteout(p) {
				return nil
			}
			rel, err := filepath.Rel(l.Dir, p)
			if err != nil {
				return err
			}
			holders["/"+rel] = append(holders["/"+rel], l.Name)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("box %s: read layer %s: %w", b.Name, l.Name, err)
		}
	}
	var out []Shadow
	for p, ls := range holders {
		if len(ls) > 1 {
			out = append(out, Shadow{Path: p, Layers: ls})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// isWhiteout reports whether p is overlayfs's whiteout: a character
// device 0/0 (Documentation/filesystems/overlayfs.rst).
func isWhiteout(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}
