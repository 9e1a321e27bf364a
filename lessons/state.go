package lessons

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/network"
	"stepbox/primitives/rootfs"
)

// State is what the checks judge: one reading of the session's boxes from
// the live kernel, taken through primitives' snapshots. It is plain data,
// so tests can record one and judge it again without root.
type State struct {
	Current string                  `json:"current,omitempty"` // the box later steps apply to
	Boxes   []BoxState              `json:"boxes"`             // in the order they were made
	Tree    *primitives.ProcessNode `json:"tree,omitempty"`    // the session's process tree
	// HostListeners are the TCP sockets listening in the session's
	// network namespace: the host's ports, whatever the boxes share.
	HostListeners []primitives.Listener `json:"host_listeners,omitempty"`
	// Net is the network map, once the session has taken a network step.
	Net *network.Map `json:"net,omitempty"`
}

// BoxState is one box as the kernel shows it.
type BoxState struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	// Dir is the box's state directory ($BOX_DIR), removed with the
	// session: what the box's steps write for it lands there.
	Dir string `json:"dir,omitempty"`
	// Before marks a box made before the lesson opened: left over from
	// an earlier lesson, it earns no credit unless it is the current box.
	Before bool `json:"before,omitempty"`
	// Err says why the box could not be read (its processes are gone);
	// the other fields are then unset.
	Err        string                       `json:"err,omitempty"`
	Namespaces primitives.NamespaceSnapshot `json:"namespaces"`
	UTS        primitives.UTSName           `json:"uts"`
	FS         primitives.BoxFS             `json:"fs"`
	Stack      *rootfs.StackSnapshot        `json:"stack,omitempty"` // with files; nil without an overlay
	Shadows    []primitives.Shadow          `json:"shadows,omitempty"`
	Mounts     rootfs.MountTable            `json:"mounts"`
	HostMounts rootfs.MountTable            `json:"host_mounts"`
	Cgroup     *cgroups.Snapshot            `json:"cgroup,omitempty"`      // nil before `cgroup new`
	CgroupView []procfs.Cgroup              `json:"cgroup_view,omitempty"` // /proc/self/cgroup read inside; nil without a cgroup namespace
	Listeners  []primitives.Listener        `json:"listeners,omitempty"`
	Root       primitives.RootView          `json:"root"`
	Clocks     primitives.ClockOffsets      `json:"clocks"`
	UIDMap     []primitives.IDMapping       `json:"uid_map,omitempty"`
	// Sockets are the sockets the box's processes hold open: they tell
	// which box a listening port belongs to, in any network namespace.
	Sockets []Socket `json:"sockets,omitempty"`
	// Security is what the security panel reads: PID 1's privileges, the
	// guarded paths, the device rules, the user namespace.
	Security *primitives.SecuritySnapshot `json:"security,omitempty"`
	// Commands are the privileges of the box's container processes (what
	// exec and sh started and left running), the newest last.
	Commands []primitives.ProcSecurity `json:"commands,omitempty"`
}

// Socket is a socket a process of a box holds open.
type Socket struct {
	Inode   uint64 `json:"inode"`
	PID     int    `json:"pid"`     // the host's PID of the process holding it
	Command string `json:"command"` // its command line, or its name
}

// Observe reads the session's boxes. A box that cannot be read is kept
// with Err set, so checks can say so.
func Observe(s *primitives.Session, current string) *State {
	st := &State{Current: current}
	for _, b := range s.Boxes() {
		if b == nil {
			continue
		}
		st.Boxes = append(st.Boxes, observeBox(b))
	}
	if tree, err := s.ProcessTree(); err == nil {
		st.Tree = tree
		for i := range st.Boxes {
			if st.Boxes[i].Err == "" {
				st.Boxes[i].Sockets = heldSockets(boxProcesses(tree, st.Boxes[i].Name))
				st.Boxes[i].Commands = commandPrivileges(containerProcesses(tree, st.Boxes[i].Name))
			}
		}
	}
	// The session runs in the host's network namespace.
	st.HostListeners, _ = primitives.ListenersOf(os.Getpid())
	if s.NetUsed() {
		if m, err := s.NetMap(); err == nil {
			st.Net = &m
		}
	}
	return st
}

// MadeBefore marks the boxes whose IDs are in before as made before the
// lesson opened, and returns s.
func (s *State) MadeBefore(before map[string]bool) *State {
	for i := range s.Boxes {
		s.Boxes[i].Before = before[s.Boxes[i].ID]
	}
	return s
}

// commandPrivileges reads /proc/PID/status of procs, oldest first. A
// process that ends meanwhile is left out.
func commandPrivileges(procs []*primitives.ProcessNode) []primitives.ProcSecurity {
	var out []primitives.ProcSecurity
	for _, n := range procs {
		if p, err := primitives.ReadProcSecurity(n.PID); err == nil {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b primitives.ProcSecurity) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// heldSockets reads the sockets procs hold open, from /proc/PID/fd. A
// process that ends meanwhile holds nothing.
func heldSockets(procs []*primitives.ProcessNode) []Socket {
	var out []Socket
	for _, n := range procs {
		p, err := procfs.NewProc(n.PID)
		if err != nil {
			continue
		}
		targets, err := p.FileDescriptorTargets()
		if err != nil {
			continue
		}
		cmd := n.Cmdline
		if cmd == "" {
			cmd = n.Comm
		}
		for _, t := range targets {
			inode, ok := strings.CutPrefix(t, "socket:[")
			if !ok {
				continue
			}
			if i, err := strconv.ParseUint(strings.TrimSuffix(inode, "]"), 10, 64); err == nil {
				out = append(out, Socket{Inode: i, PID: n.PID, Command: cmd})
			}
		}
	}
	return out
}

func observeBox(b *primitives.Box) BoxState {
	bs := BoxState{Name: b.Name, ID: b.ID, Dir: b.Dir}
	fail := func(err error) BoxState { return BoxState{Name: b.Name, ID: b.ID, Err: err.Error()} }
	if err := b.Alive(); err != nil {
		return fail(err)
	}
	var err error
	if bs.Namespaces, err = b.Namespaces(); err != nil {
		return fail(err)
	}
	if bs.UTS, err = b.UTSName(); err != nil {
		return fail(err)
	}
	bs.FS = b.FS()
	if bs.FS.Merged != "" {
		stack, err := b.Stack(true)
		if err != nil {
			return fail(err)
		}
		bs.Stack = &stack
		if bs.Shadows, err = b.Shadows(); err != nil {
			return fail(err)
		}
	}
	// A check decides on the whole table: a cut read is the box's error.
	ctx, cancel := context.WithTimeout(context.Background(), rootfs.StepReadTime)
	defer cancel()
	if bs.Mounts, bs.HostMounts, err = b.Mounts(ctx); err != nil {
		return fail(err)
	}
	if b.Cgroup() != nil {
		snap, err := b.CgroupSnapshot(nil)
		if err != nil {
			return fail(err)
		}
		bs.Cgroup = &snap
	}
	if b.Has("cgroup") {
		// A box pivoted without a /proc cannot read its view: no view.
		bs.CgroupView, _ = b.CgroupView()
	}
	if bs.Listeners, err = b.Listeners(); err != nil {
		return fail(err)
	}
	if bs.Root, err = b.RootView(); err != nil {
		return fail(err)
	}
	// Kernels before 5.6 have no time namespaces, and no timens_offsets.
	bs.Clocks, _ = b.ClockOffsets()
	if bs.UIDMap, err = b.UIDMap(); err != nil {
		return fail(err)
	}
	if sec, err := b.SecuritySnapshot(ctx); err == nil {
		bs.Security = &sec
	}
	return bs
}
