package primitives

import (
	"fmt"
	"os"

	"github.com/prometheus/procfs"
)

// NamespaceRows are the entries of /proc/PID/ns, in the order the
// namespace table shows them (the *_for_children rows after their type).
var NamespaceRows = []string{"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"}

// NamespaceSnapshot is the namespace inode table of a box: the host's
// (the session's own namespaces), the box process's and its PID 1's.
type NamespaceSnapshot struct {
	Box     string
	HostPID int // the session
	BoxPID  int
	InitPID int // 0 when the box has no PID 1 of its own
	Rows    []NamespaceRow
	// UserNS: the box has a user namespace of its own, so who owns each
	// namespace (Owner) is worth showing.
	UserNS bool
}

// NamespaceRow is one namespace type's inode in each column; 0 when the
// process has no such entry or does not exist.
type NamespaceRow struct {
	Type string
	Host uint32
	Box  uint32
	Init uint32
	// Owner is the user namespace that owns the namespace of the box's
	// command process (PID 1, or the box process): its parent, for the
	// user row (ioctl_ns(2)). 0 when unknown.
	Owner uint32
}

// Differs reports whether the box (or its PID 1) has a namespace of this
// row's type other than the host's.
func (r NamespaceRow) Differs() bool {
	return (r.Box != 0 && r.Box != r.Host) || (r.Init != 0 && r.Init != r.Host)
}

// readNamespaces returns the inodes of /proc/PID/ns as procfs reads them.
func readNamespaces(fs procfs.FS, pid int) (map[string]uint32, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return nil, err
	}
	nss, err := p.Namespaces()
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/ns: %w", pid, err)
	}
	out := map[string]uint32{}
	for name, ns := range nss {
		out[name] = ns.Inode
	}
	return out, nil
}

// Namespaces reads the box's namespace table from the live kernel.
func (b *Box) Namespaces() (NamespaceSnapshot, error) {
	if err := b.Alive(); err != nil {
		return NamespaceSnapshot{}, err
	}
	fs, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		return NamespaceSnapshot{}, err
	}
	snap := NamespaceSnapshot{Box: b.Name, HostPID: os.Getpid(), BoxPID: b.PID(), InitPID: b.InitPID()}
	host, err := readNamespaces(fs, snap.HostPID)
	if err != nil {
		return snap, err
	}
	box, err := readNamespaces(fs, snap.BoxPID)
	if err != nil {
		return snap, fmt.Errorf("box %s: %w", b.Name, err)
	}
	var init map[string]uint32
	if snap.InitPID != 0 {
		if init, err = readNamespaces(fs, snap.InitPID); err != nil {
			return snap, fmt.Errorf("box %s, PID 1: %w", b.Name, err)
		}
	}
	cmd := box
	if init != nil {
		cmd = init
	}
	snap.UserNS = cmd["user"] != host["user"]
	for _, name := range NamespaceRows {
		row := NamespaceRow{Type: name, Host: host[name], Box: box[name], Init: init[name]}
		if snap.UserNS {
			row.Owner = nsOwner(fmt.Sprintf("/proc/%d/ns/%s", b.CommandPID(), name), name == "user")
		}
		snap.Rows = append(snap.Rows, row)
	}
	return snap, nil
}
