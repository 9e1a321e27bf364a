package repl

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/network"
	"stepbox/primitives/step"
	"stepbox/viz"

	"github.com/prometheus/procfs"
)

func init() {
	register(&Command{
		Name: "web", Group: "session", Usage: "web [on|off] [--listen ADDR]", MaxArgs: 1,
		Summary: "the live view: a read-only page for a projector that redraws the box after every step",
		Kernel:  "an HTTP server on loopback (127.0.0.1) unless --listen names another address; the page reads the same snapshots as the panels and never runs a command",
		Example: "web on",
		Flags:   []Flag{{Name: "listen", Value: "ADDR", Help: "HOST:PORT to listen on; the address printed carries a token, which every request needs"}},
		Complete: func(sh *Shell, args []string) []Suggestion {
			if len(args) > 1 {
				return nil
			}
			return []Suggestion{{Text: "on", Description: "start the live view"}, {Text: "off", Description: "stop it"}}
		},
		Run: runWeb,
	})
}

// webDefaultAddr is loopback on a port the kernel picks.
const webDefaultAddr = "127.0.0.1:0"

// webTick is how often the cgroup bars are read again between steps, so
// they move while a command runs.
const webTick = time.Second

// webBoxesShown is how many boxes the page draws side by side.
const webBoxesShown = 2

func runWeb(sh *Shell, c *Call) error {
	mode := "on"
	if len(c.Args) == 1 {
		mode = c.Args[0]
	}
	switch mode {
	case "on":
		addr := webDefaultAddr
		if v, ok := c.Flags["listen"]; ok {
			addr = v
		}
		return sh.StartWeb(addr)
	case "off":
		if c.Has("listen") {
			return fmt.Errorf("--listen goes with `web on`, not `web off`")
		}
		if sh.web == nil {
			sh.say("the live view is not running")
			return nil
		}
		err := sh.StopWeb()
		sh.ok("live view stopped")
		return err
	}
	return fmt.Errorf("%q: use on or off", mode)
}

// StartWeb starts the live view on addr and prints its address; it is
// `web on --listen ADDR` and `--web ADDR`.
func (sh *Shell) StartWeb(addr string) error {
	if sh.web != nil {
		sh.say("the live view is already at %s (`web off` stops it)", sh.web.srv.URL)
		return nil
	}
	v := &liveView{cgroups: map[string]cgroupReader{}, stop: make(chan struct{})}
	v.state = v.gather(sh, "", nil)
	srv, err := startLiveServer(addr, viz.LivePage(v.state))
	if err != nil {
		return err
	}
	v.srv = srv
	sh.web = v
	go v.tick()
	sh.okStyled("live view at " + sh.Theme.Cmd.Render(srv.URL))
	for _, u := range srv.Also {
		sh.say("  or at %s", sh.Theme.Cmd.Render(u))
	}
	if srv.loopback {
		sh.say("  read-only, on this machine only, and only with the whole address: the token keeps other users of the machine out; `web on --listen 0.0.0.0:8080` serves other machines")
	} else {
		sh.say("  it listens beyond loopback: the address carries a token, and a request without it is refused")
	}
	return nil
}

// StopWeb stops the live view, if it runs.
func (sh *Shell) StopWeb() error {
	v := sh.web
	if v == nil {
		return nil
	}
	sh.web = nil
	close(v.stop)
	return v.srv.Close()
}

// cgroupReader reads a box's cgroup tree from the host's files alone
// (primitives.Box.CgroupReader).
type cgroupReader = func(prev *cgroups.Snapshot) (cgroups.Snapshot, error)

// liveView is the shell's side of the live view: it gathers the
// snapshots after each step (on the shell's goroutine, where the boxes
// may be asked) and reads the cgroup bars again every second between
// steps (from the host alone: a box running a command cannot answer).
type liveView struct {
	srv  *liveServer
	stop chan struct{}

	mu      sync.Mutex
	state   viz.LiveState
	seq     int
	before  map[string]nsTables     // each box's namespace tables
	cgroups map[string]cgroupReader // each box's cgroup reader
	// stepCgroups is each box's cgroup tree as the last line left it,
	// and before the step that last changed its limits: the limits that
	// step changed stay marked through looks. The tick never writes it,
	// so a reading taken while a step ran cannot stand in for the tree
	// before the step.
	stepCgroups map[string]cgroupTables
	// demo is the lesson `demo` plays, at step demoStep (0-based).
	demo     *lessons.Lesson
	demoStep int
	// trace is what the line running found, if it was `net trace`;
	// output is the tail of what it printed. beforeLine clears both.
	trace  *network.Trace
	output tailBuffer
	// end is the demo's end, once it has played its last step.
	end *viz.LiveEnd
}

// traced keeps what `net trace` found for the page. A nil view does
// nothing.
func (v *liveView) traced(tr network.Trace) {
	if v == nil {
		return
	}
	v.mu.Lock()
	v.trace = &tr
	v.mu.Unlock()
}

// stdio is where a command the shell runs writes: the terminal, and,
// while the live view runs, the tail the page shows too.
func (sh *Shell) stdio() (out, errw io.Writer) {
	if sh.web == nil {
		return sh.Out, sh.Err
	}
	return io.MultiWriter(sh.Out, &sh.web.output), io.MultiWriter(sh.Err, &sh.web.output)
}

// tailBuffer keeps the last tailBytes bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 8 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *tailBuffer) reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// lines is what was written, a line each, with no ending newline's
// empty line.
func (t *tailBuffer) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.buf), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// atStep tells the page which step of lesson l the demo plays. A nil
// view does nothing.
func (v *liveView) atStep(l *lessons.Lesson, i int) {
	if v == nil {
		return
	}
	v.mu.Lock()
	v.demo, v.demoStep = l, i
	v.mu.Unlock()
}

// finished shows the end of lesson l on the page: its summary and its
// recap, in place of the last step. A nil view does nothing.
func (v *liveView) finished(sh *Shell, l *lessons.Lesson, summary, recap string) {
	if v == nil {
		return
	}
	v.mu.Lock()
	v.demo, v.demoStep, v.end = l, len(l.Steps)-1, &viz.LiveEnd{Summary: summary, Recap: recap}
	line := v.state.Line
	v.mu.Unlock()
	v.show(v.gather(sh, line, nil))
}

// beforeLine shows line as running in the header until afterLine
// replaces it with its result; the drawings stay those of the last
// step. A nil view does nothing.
func (v *liveView) beforeLine(line string) {
	if t := strings.TrimSpace(line); v == nil || t == "" || strings.HasPrefix(t, "#") {
		return
	}
	v.mu.Lock()
	st := v.state
	v.trace = nil
	v.mu.Unlock()
	v.output.reset()
	st.Line, st.Failed, st.Running = strings.TrimSpace(line), "", true
	v.show(st)
}

// afterLine redraws after the shell ran line; err is how it ended. A
// nil view does nothing.
func (v *liveView) afterLine(sh *Shell, line string, err error) {
	if t := strings.TrimSpace(line); v == nil || t == "" || strings.HasPrefix(t, "#") {
		return
	}
	v.show(v.gather(sh, strings.TrimSpace(line), err))
}

// show sends st to the page as the next redraw.
func (v *liveView) show(st viz.LiveState) {
	v.mu.Lock()
	v.seq++
	st.Seq = v.seq
	v.state = st
	page := viz.LivePage(st)
	v.mu.Unlock()
	v.srv.publish(page)
}

// gather reads every snapshot the page draws. It runs on the shell's
// goroutine, between steps.
func (v *liveView) gather(sh *Shell, line string, err error) viz.LiveState {
	st := viz.LiveState{Line: line, Step: sh.lastStep, Lesson: v.lesson(sh), Output: v.output.lines()}
	v.mu.Lock()
	st.Trace = v.trace
	v.mu.Unlock()
	if err != nil {
		st.Failed = errorText(err) // a path the box named, escaped as the terminal shows it
	}
	tree, treeErr := sh.Session.ProcessTree()
	readers := map[string]cgroupReader{}
	before := map[string]nsTables{}
	stepCgroups := map[string]cgroupTables{}
	for _, b := range liveBoxes(sh) {
		lb := viz.LiveBox{Name: b.Name, Stage: stage(b), Hostname: b.Hostname(), Current: b == sh.Current()}
		if ns, err := b.Namespaces(); err == nil {
			lb.Namespaces = &ns
			lb.Before, before[b.Name] = v.nsBefore(b.Name, ns, sh.lastStep)
		} else {
			lb.Errors = append(lb.Errors, "namespaces: "+err.Error())
		}
		if treeErr == nil {
			lb.Processes = boxBranch(tree, b.PID())
		}
		if b.FS().Merged != "" {
			if snap, err := b.Stack(false); err == nil {
				lb.Stack = &snap
			} else {
				lb.Errors = append(lb.Errors, "layer stack: "+err.Error())
			}
		}
		if b.Cgroup() != nil {
			read, err := b.CgroupReader()
			if err == nil {
				readers[b.Name] = read
				var snap cgroups.Snapshot
				if snap, err = read(v.lastCgroup(b.Name)); err == nil {
					lb.Cgroup = &snap
					lb.CgroupBefore, stepCgroups[b.Name] = v.cgroupBefore(b.Name, &snap, sh.lastStep)
				}
			}
			if err != nil {
				lb.Errors = append(lb.Errors, "cgroup: "+err.Error())
			}
		}
		st.Boxes = append(st.Boxes, lb)
	}
	// The network map once a network step was taken; read again after
	// every line, so a step's links and a command's packets show.
	if sh.Session.NetUsed() {
		if m, err := sh.Session.NetMap(); err == nil {
			st.Net = &m
		} else {
			st.NetError = err.Error()
		}
	}
	v.mu.Lock()
	v.before, v.cgroups, v.stepCgroups = before, readers, stepCgroups
	v.mu.Unlock()
	return st
}

// nsTables is a box's namespace table now, and before the step that
// last changed it.
type nsTables struct {
	now, before *primitives.NamespaceSnapshot
	step        *step.Step // that step's record
}

// nsBefore is what box name's namespace table ns is compared with to
// mark what the last step made. Lines that are no step (`ns`, `help`)
// keep the marks of the step before them; the next step clears them.
func (v *liveView) nsBefore(name string, ns primitives.NamespaceSnapshot, last *step.Step) (*primitives.NamespaceSnapshot, nsTables) {
	v.mu.Lock()
	was, ok := v.before[name]
	v.mu.Unlock()
	switch {
	case !ok:
		return nil, nsTables{now: &ns, step: last}
	case !slices.Equal(was.now.Rows, ns.Rows) || was.now.InitPID != ns.InitPID:
		return was.now, nsTables{now: &ns, before: was.now, step: last}
	case last == was.step:
		return was.before, was
	}
	return &ns, nsTables{now: &ns, before: &ns, step: last}
}

// lastCgroup is box name's cgroup reading on the page, for CPU rates.
func (v *liveView) lastCgroup(name string) *cgroups.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, b := range v.state.Boxes {
		if b.Name == name {
			return b.Cgroup
		}
	}
	return nil
}

// cgroupTables is a box's cgroup tree as the last line left it, and
// before the step that last changed its limits.
type cgroupTables struct {
	now, before *cgroups.Snapshot
	step        *step.Step // the last step's record when now was read
}

// cgroupBefore is what box name's cgroup tree now is compared with to
// mark the limits the last step changed, as nsBefore does for
// namespaces: lines that are no step (`ns`, `cgroup`) keep the marks of
// the step before them; the next step clears them.
func (v *liveView) cgroupBefore(name string, now *cgroups.Snapshot, last *step.Step) (*cgroups.Snapshot, cgroupTables) {
	v.mu.Lock()
	was, ok := v.stepCgroups[name]
	v.mu.Unlock()
	switch {
	case !ok:
		return nil, cgroupTables{now: now, step: last}
	case !viz.SameLimits(*was.now, *now):
		return was.now, cgroupTables{now: now, before: was.now, step: last}
	case last == was.step:
		return was.before, cgroupTables{now: now, before: was.before, step: last}
	}
	return now, cgroupTables{now: now, before: now, step: last}
}

// liveBoxes are the boxes the page draws: the current one and the
// newest of the others, in the order they were made, so that a box
// keeps its place on the screen when `use` changes the current one.
func liveBoxes(sh *Shell) []*primitives.Box {
	cur := sh.Current()
	shown := map[*primitives.Box]bool{cur: cur != nil}
	boxes := sh.Session.Boxes()
	n := len(shown)
	if cur == nil {
		n = 0
	}
	for i := len(boxes) - 1; i >= 0 && n < webBoxesShown; i-- {
		if b := boxes[i]; b != nil && !shown[b] {
			shown[b] = true
			n++
		}
	}
	var out []*primitives.Box
	for _, b := range boxes {
		if b != nil && shown[b] {
			out = append(out, b)
		}
	}
	return out
}

// boxBranch is the subtree of the process tree rooted at pid.
func boxBranch(n *primitives.ProcessNode, pid int) *primitives.ProcessNode {
	if n.PID == pid {
		return n
	}
	for _, c := range n.Children {
		if f := boxBranch(c, pid); f != nil {
			return f
		}
	}
	return nil
}

// lesson is the demo's lesson or the open one, at its current step,
// with that step's check run on the live state.
func (v *liveView) lesson(sh *Shell) *viz.LiveLesson {
	v.mu.Lock()
	l, i, end := v.demo, v.demoStep, v.end
	v.mu.Unlock()
	if w := sh.Watch; l == nil && w != nil && w.lesson != nil {
		l, i = w.lesson, w.step
	}
	if l == nil {
		return nil
	}
	st := &l.Steps[i]
	r := st.Judge(lessons.Observe(sh.Session, sh.current))
	return &viz.LiveLesson{Number: l.Number, Steps: len(l.Steps), Title: l.Title, Step: i + 1, StepTitle: st.Title, Pass: r.Pass, Saw: r.Saw, End: end}
}

// tick reads the cgroup bars and the process tree again every second
// and redraws when they moved: a running command's memory and pids
// climb on the page as it runs, and a process that ended leaves the
// drawing. It reads only the host's cgroup files and /proc, never a box.
func (v *liveView) tick() {
	t := time.NewTicker(webTick)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		if v.srv.Clients() > 0 {
			v.refresh()
		}
	}
}

// refresh is one tick: it reads the cgroup bars and the process tree
// again and redraws, unless a step redrew meanwhile.
func (v *liveView) refresh() {
	v.mu.Lock()
	st, readers, seq := v.state, v.cgroups, v.seq
	v.mu.Unlock()
	boxes := append([]viz.LiveBox(nil), st.Boxes...)
	procs, procErr := procfs.AllProcs()
	for i, b := range boxes {
		if procErr == nil && b.Processes != nil {
			boxes[i].Processes = reread(procs, b.Processes)
		}
		read := readers[b.Name]
		if read == nil {
			continue
		}
		if snap, err := read(b.Cgroup); err == nil {
			boxes[i].Cgroup = &snap
		}
	}
	st.Boxes = boxes
	page := viz.LivePage(st)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seq == seq { // no step redrew meanwhile
		v.state = st
		v.srv.publish(page)
	}
}

// reread is the branch under old's root as /proc has it now: processes
// that ended are gone, new ones hang under their parents. It reads only
// /proc (a box running a command cannot be asked, and its lock may be
// held), so the roles come from old: a new process is its box's.
func reread(procs procfs.Procs, old *primitives.ProcessNode) *primitives.ProcessNode {
	known := map[int]*primitives.ProcessNode{}
	var index func(n *primitives.ProcessNode)
	index = func(n *primitives.ProcessNode) {
		known[n.PID] = n
		for _, c := range n.Children {
			index(c)
		}
	}
	index(old)
	nodes, children := map[int]*primitives.ProcessNode{}, map[int][]int{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || st.State == "Z" {
			continue // ended, or ending: nothing runs there any more
		}
		n := primitives.ReadProcess(p, st)
		if was := known[p.PID]; was != nil && was.Comm == st.Comm {
			n.Role, n.Box = was.Role, was.Box
		}
		nodes[p.PID] = n
		children[st.PPID] = append(children[st.PPID], p.PID)
	}
	var grow func(pid int, box string) *primitives.ProcessNode
	grow = func(pid int, box string) *primitives.ProcessNode {
		n := nodes[pid]
		if n.Box == "" {
			n.Box = box
		}
		kids := children[pid]
		slices.Sort(kids)
		for _, c := range kids {
			if c != pid {
				n.Children = append(n.Children, grow(c, n.Box))
			}
		}
		return n
	}
	if nodes[old.PID] == nil {
		return nil
	}
	return grow(old.PID, old.Box)
}
