package primitives

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/procfs"
)

// ProcessNode is one process of the tree under the session, with its PID
// as the host sees it and as each nested PID namespace sees it.
type ProcessNode struct {
	PID      int
	PPID     int
	NSpid    []int  // the NSpid line of /proc/PID/status: host first, innermost last
	Comm     string // the command name
	Cmdline  string
	Role     string // "session", "box process", "PID 1", or "" for a container process
	Box      string // the box it belongs to, if any
	Children []*ProcessNode
}

// BoxPID is the PID the process has in its innermost PID namespace.
func (n *ProcessNode) BoxPID() int {
	if len(n.NSpid) == 0 {
		return n.PID
	}
	return n.NSpid[len(n.NSpid)-1]
}

// ProcessTree reads every process descending from the session and labels
// the chain session → box process → PID 1 → container processes. A box
// that is gone (BoxGoneError) has no process drawn: what is left of its
// box process or PID 1 is a zombie the session keeps unreaped until `rm`,
// so that its PID is not reused meanwhile.
func (s *Session) ProcessTree() (*ProcessNode, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, err
	}
	roles := map[int]string{os.Getpid(): "session"}
	boxOf := map[int]string{}
	gone := map[int]bool{}
	for _, b := range s.Boxes() {
		if b == nil {
			continue
		}
		var bg *BoxGoneError
		if err := b.Alive(); errors.As(err, &bg) {
			gone[b.PID()], gone[b.InitPID()] = true, true
			continue
		}
		roles[b.PID()] = "box process"
		boxOf[b.PID()] = b.Name
		if ip := b.InitPID(); ip != 0 {
			roles[ip] = "PID 1"
			boxOf[ip] = b.Name
		}
	}
	nodes := map[int]*ProcessNode{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || gone[p.PID] && st.State == "Z" {
			continue
		}
		n := ReadProcess(p, st)
		n.Role, n.Box = roles[p.PID], boxOf[p.PID]
		nodes[p.PID] = n
	}
	root := nodes[os.Getpid()]
	if root == nil {
		return nil, os.ErrNotExist
	}
	for _, n := range nodes {
		if parent := nodes[n.PPID]; parent != nil && n.PID != n.PPID {
			parent.Children = append(parent.Children, n)
		}
	}
	// Keep only the session's descendants, ordered by PID; container
	// processes inherit their box's name.
	var walk func(n *ProcessNode, box string)
	walk = func(n *ProcessNode, box string) {
		if n.Box == "" {
			n.Box = box
		}
		sort.Slice(n.Children, func(i, j int) bool { return n.Children[i].PID < n.Children[j].PID })
		for _, c := range n.Children {
			walk(c, n.Box)
		}
	}
	walk(root, "")
	return root, nil
}

// ReadProcess is process p as a node with no children, role or box:
// its PIDs, command name and command line, from /proc alone.
func ReadProcess(p procfs.Proc, st procfs.ProcStat) *ProcessNode {
	n := &ProcessNode{PID: p.PID, PPID: st.PPID, Comm: st.Comm}
	if status, err := p.NewStatus(); err == nil {
		for _, v := range status.NSpids {
			n.NSpid = append(n.NSpid, int(v))
		}
	}
	n.Cmdline = readCmdline(p.PID)
	return n
}

// maxCmdline bounds what a snapshot reads of a command line: a panel shows
// a screen's width of it, and a box's process may carry megabytes of
// arguments (ARG_MAX is a quarter of its stack limit). Reading, escaping
// and measuring all of it, for every process at every step, made one `ps`
// take minutes of the session's CPU (ut25 F8).
const maxCmdline = 4096

// readCmdline is /proc/PID/cmdline's first maxCmdline bytes, arguments
// joined by spaces, ending in "…" when there was more.
func readCmdline(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, maxCmdline+1)
	n, _ := io.ReadFull(f, buf)
	raw, cut := buf[:n], n > maxCmdline
	if cut {
		raw = raw[:maxCmdline]
		// Not half a character: the cut is marked instead.
		for i := len(raw) - 1; i >= 0 && i >= len(raw)-utf8.UTFMax; i-- {
			if utf8.RuneStart(raw[i]) {
				if !utf8.FullRune(raw[i:]) {
					raw = raw[:i]
				}
				break
			}
		}
	}
	line := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ")
	if cut {
		line += "…"
	}
	return line
}
