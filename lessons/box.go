package lessons

import "stepbox/primitives"

// nsRow returns the box's row of namespace type t.
func (b *BoxState) nsRow(t string) primitives.NamespaceRow {
	for _, r := range b.Namespaces.Rows {
		if r.Type == t {
			return r
		}
	}
	return primitives.NamespaceRow{Type: t}
}

// ownNamespace reports whether the box process or its PID 1 has a
// namespace of type t other than the host's, counting the *_for_children
// rows: pid and time namespaces apply to children.
func (b *BoxState) ownNamespace(t string) bool {
	return b.nsRow(t).Differs() || b.nsRow(t+"_for_children").Differs()
}

// commandNamespace is the inode of type t the box's commands get: PID 1's
// when there is one, else what the box process gives its children.
func (b *BoxState) commandNamespace(t string) uint32 {
	r := b.nsRow(t)
	if t == "pid" || t == "time" {
		r = b.nsRow(t + "_for_children")
	}
	if b.Namespaces.InitPID != 0 && r.Init != 0 {
		return r.Init
	}
	return r.Box
}

// listensOn reports whether a TCP socket listens on port in the box's
// network namespace.
func (b *BoxState) listensOn(port int) bool {
	for _, l := range b.Listeners {
		if l.Port == port {
			return true
		}
	}
	return false
}

// findProcess returns the node of host PID pid in tree, or nil.
func findProcess(tree *primitives.ProcessNode, pid int) *primitives.ProcessNode {
	if tree == nil {
		return nil
	}
	if tree.PID == pid {
		return tree
	}
	for _, c := range tree.Children {
		if n := findProcess(c, pid); n != nil {
			return n
		}
	}
	return nil
}

// boxProcesses returns every process of box in tree: its box process,
// its PID 1 and what runs under them.
func boxProcesses(tree *primitives.ProcessNode, box string) []*primitives.ProcessNode {
	if tree == nil {
		return nil
	}
	var out []*primitives.ProcessNode
	if tree.Box == box {
		out = append(out, tree)
	}
	for _, c := range tree.Children {
		out = append(out, boxProcesses(c, box)...)
	}
	return out
}

// containerProcesses returns the processes running in box that are not
// stepbox's own: what `exec` and `sh` started and what those left.
func containerProcesses(tree *primitives.ProcessNode, box string) []*primitives.ProcessNode {
	var out []*primitives.ProcessNode
	for _, p := range boxProcesses(tree, box) {
		if p.Role == "" {
			out = append(out, p)
		}
	}
	return out
}

// socketHolder returns the box whose process holds the socket of inode,
// and that process; nil when no box's does (the host's own socket).
func (s *State) socketHolder(inode uint64) (*BoxState, *Socket) {
	if inode == 0 {
		return nil, nil
	}
	for _, b := range s.live() {
		for i, k := range b.Sockets {
			if k.Inode == inode {
				return b, &b.Sockets[i]
			}
		}
	}
	return nil, nil
}
