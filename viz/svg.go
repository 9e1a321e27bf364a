package viz

import (
	"fmt"
	"html"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/network"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// The live view (DESIGN.md, "The live view"): the same snapshots the
// terminal panels draw, drawn as SVG for a browser on a projector. Every
// function here is pure; colours live in the page's stylesheet, the SVG
// only names classes, so the dark and light themes are CSS alone.

// LiveState is everything the live page shows after one step.
type LiveState struct {
	Seq    int    // how many redraws the server has sent
	Line   string // the line the shell ran last
	Failed string // its error, if it failed
	// Running says Line has started and not ended: the header shows it
	// as running, and Failed is empty.
	Running bool
	Step    *step.Step // the last step's record
	Lesson  *LiveLesson
	Boxes   []LiveBox // in the order they were made
	// Net is the network map, nil while the session has taken no
	// network step; NetError says why it could not be read.
	Net      *network.Map
	NetError string
	// Trace is what `net trace` found, when Line was one: the page
	// shows it in place of the step's record.
	Trace *network.Trace
	// Output is the tail of what Line printed (the box's or the host
	// command's output, untrusted), a line each.
	Output []string
}

// LiveLesson is the lesson or demo being played, at its current step.
type LiveLesson struct {
	Number, Steps int
	Title         string
	Step          int // 1-based
	StepTitle     string
	Pass          bool   // the step's check passes on the live state
	Saw           string // what the check saw
	// End is set once the demo has played its last step: the page
	// shows it in place of the step's record.
	End *LiveEnd
}

// LiveEnd is the end of a demo: how its checks went, and the lesson's
// recap (Markdown, "" for none).
type LiveEnd struct {
	Summary, Recap string
}

// LiveBox is one box's snapshots; a nil snapshot is a stage the box has
// not reached (no overlay yet, no cgroup yet).
type LiveBox struct {
	Name, Stage string
	Hostname    string // set with `hostname`, or ""
	// Current says the shell's commands go to this box (`use`): beside
	// a second box, it is marked so.
	Current    bool
	Namespaces *primitives.NamespaceSnapshot
	// Before is the namespace table before the last step: the inodes
	// that differ from it are the ones the step made.
	Before    *primitives.NamespaceSnapshot
	Processes *primitives.ProcessNode // the box process and everything under it
	Stack     *rootfs.StackSnapshot
	Cgroup    *cgroups.Snapshot
	// CgroupBefore is the cgroup tree before the last line: the limits
	// that differ from it are marked as changed.
	CgroupBefore *cgroups.Snapshot
	Errors       []string // snapshots that could not be read, and why
}

// Sizes of the drawings, in SVG user units: the page scales each panel
// to its column (about 420 px at 1280×720), so a unit is about a pixel.
const (
	svgW      = 440  // every panel's width
	svgText   = 18.0 // body text
	svgSmall  = 15.0 // secondary text
	svgTitle  = 21.0 // panel titles
	svgCharEm = 0.61 // width of a monospace character, in ems
	svgRow    = 30   // one line of chips or bars
)

// On the live page each drawing is as many units wide as its column has
// pixels at 1280×720, so a unit is a pixel, and its secondary text is as
// large as a namespace chip's (class "large"). One box: three columns,
// 384 + 400 + 436 units. Two boxes: each box's column (about 604 px)
// holds its namespaces and, beside them, its cgroup over its stack.
const (
	svgNarrowNS    = 384 // the namespace drawing
	svgNarrowSide  = 220 // the cgroup and the stack beside it
	svgNarrowNet   = 460 // the network map beside two boxes' namespaces
	svgAloneStack  = 400 // one box's stack
	svgAloneCgroup = 436 // one box's cgroup tree
	svgSmallNarrow = 16.0
)

// svgSize is a drawing's width and its secondary text's size; class
// goes on the <svg> so the stylesheet sizes the text to match. pad is
// the room inside a namespace frame, gap between its rows; an untitled drawing leaves its
// title to the box's heading, for height.
type svgSize struct {
	w        int
	small    float64
	class    string
	pad, gap int
	untitled bool
}

var (
	wideSize   = svgSize{w: svgW, small: svgSmall, pad: 12, gap: 6}
	narrowNS   = svgSize{w: svgNarrowNS, small: svgSmallNarrow, class: "large", pad: 8, gap: 3, untitled: true}
	narrowSide = svgSize{w: svgNarrowSide, small: svgSmallNarrow, class: "large", pad: 8, gap: 3}
	// The network map beside two boxes' namespaces: a third column.
	narrowNet = svgSize{w: svgNarrowNet, small: svgSmallNarrow, class: "large"}
	// One box's three columns.
	aloneNS     = svgSize{w: svgNarrowNS, small: svgSmallNarrow, class: "large", pad: 8, gap: 5}
	aloneStack  = svgSize{w: svgAloneStack, small: svgSmallNarrow, class: "large"}
	aloneCgroup = svgSize{w: svgAloneCgroup, small: svgSmallNarrow, class: "large"}
	// The network map under one box's stack, as wide as its column.
	aloneNet = svgSize{w: svgAloneStack, small: svgSmallNarrow, class: "large"}
)

// svgDoc collects the elements of one drawing and its height, at its
// size (wideSize when zero).
type svgDoc struct {
	b    strings.Builder
	h    int
	size svgSize
}

// w is the drawing's width.
func (d *svgDoc) w() int {
	if d.size.w == 0 {
		return svgW
	}
	return d.size.w
}

func (d *svgDoc) add(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

// text draws s (escaped) at x, y with the given classes.
func (d *svgDoc) text(x, y int, class, s string) {
	d.add(`<text x="%d" y="%d" class="%s">%s</text>`, x, y, class, esc(s))
}

// finish wraps the elements in an <svg> named by id and labelled for
// screen readers.
func (d *svgDoc) finish(id, label string) string {
	class := "panel"
	if d.size.class != "" {
		class += " " + d.size.class
	}
	return fmt.Sprintf(`<svg id="%s" class="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">%s</svg>`,
		esc(id), class, d.w(), d.h, d.w(), d.h, esc(label), d.b.String())
}

// esc makes s safe for the page: control characters escaped as the
// terminal panels show them (\x1b, never the raw byte, which also is no
// legal XML character), then HTML's metacharacters. Every string the
// live view draws goes through it, box-made or not; newlines stay (HTML
// folds them), and so do backslashes: a value the box named is escaped
// (Escape, a backslash as \\) where it is drawn, once.
func esc(s string) string { return html.EscapeString(EscapeLines(s)) }

// fit cuts s, escaped first so that what is measured is what is drawn,
// to what w units hold at font size size, marking the cut.
func fit(s string, w int, size float64) string {
	s = escapeControls(s)
	n := int(float64(w) / (size * svgCharEm))
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 2 {
		return ""
	}
	return string(r[:n-1]) + "…"
}

// fitWords is fit that cuts between words: the words that do not fit
// go whole, so no number is left cut (an inode "402653…" or an address
// "172.2…" reads as another). A first word too long is cut as fit cuts.
func fitWords(s string, w int, size float64) string {
	s = escapeControls(s)
	if fit(s, w, size) == s {
		return s
	}
	words := strings.Fields(s)
	for n := len(words) - 1; n > 0; n-- {
		cut := strings.Join(words[:n], " ")
		// A cut that ends at a separator drops it too.
		cut = strings.TrimRight(cut, " ·:,→")
		if cut != "" && fit(cut+" …", w, size) == cut+" …" {
			return cut + " …"
		}
	}
	return fit(s, w, size)
}

// fitMiddle cuts a path's middle out to fit w units.
func fitMiddle(s string, w int, size float64) string {
	s = escapeControls(s)
	n := int(float64(w) / (size * svgCharEm))
	r := []rune(s)
	if len(r) <= n || n < 5 {
		return fit(s, w, size)
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// LivePage is the live page's body for state s: a header with the last
// line and the lesson, each box's drawings, and the last step's record.
// The server sends it whole after every step; the page swaps it in.
//
// Each field is escaped where it is drawn (esc); the page as a whole
// then goes through EscapeLines too, so that no field, today's or one
// added later, drawn with esc or not, brings a box's control character
// (a process name's ESC ] 2 ;) into the page: issue 15, item 7.
func LivePage(s LiveState) string { return EscapeLines(livePage(s)) }

func livePage(s LiveState) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<header id="now" data-seq="%d">`, s.Seq)
	b.WriteString(liveHeader(s))
	b.WriteString(`</header>`)
	if len(s.Boxes) == 0 {
		b.WriteString(`<p class="empty">No box yet. <code>new NAME</code> in the shell starts one; it appears here as it is built.</p>`)
	}
	// One box takes three columns, and its step record goes under its
	// cgroup; two boxes share the width, each in two narrower columns,
	// and the record goes below them.
	// The network map goes under the one box's layer stack; with two
	// boxes, beside the record below them.
	// The last command's output goes in the record, but under one
	// box's stack, where there is room, when one box is drawn.
	record, netMap, output := "", "", OutputHTML(s.Line, s.Output)
	inRecord := output
	if len(s.Boxes) == 1 {
		inRecord = ""
	}
	switch {
	case s.Lesson != nil && s.Lesson.End != nil:
		record = endHTML(*s.Lesson)
	case s.Trace != nil:
		record = TraceHTML(s.Line, *s.Trace, inRecord)
	case s.Step != nil:
		record = stepHTML(s.Step, inRecord)
	case inRecord != "":
		record = `<section id="step">` + inRecord + `</section>`
	}
	switch {
	case s.Net != nil:
		netMap = `<div id="netmap">` + netSVG(*s.Net, aloneNet) + `</div>`
	case s.NetError != "":
		netMap = fmt.Sprintf(`<p id="netmap" class="error">network map: %s</p>`, esc(s.NetError))
	}
	// Two boxes and the map: the map takes the columns of the boxes'
	// cgroups and stacks, a third column beside their namespaces, and
	// those are a line each under the namespaces (boxBrief). Under the
	// boxes, the map and the stacks and cgroups would all be drawn
	// smaller than a class can read.
	mapBeside := s.Net != nil && len(s.Boxes) == 2
	layout, class := boxWide, fmt.Sprintf("n%d", min(len(s.Boxes), 2))
	switch {
	case mapBeside:
		layout, class = boxNamespaces, "n2 map"
	case len(s.Boxes) > 1:
		layout = boxNarrow
	}
	fmt.Fprintf(&b, `<div id="boxes" class="boxes %s">`, class)
	for i, box := range s.Boxes {
		beside, under := "", ""
		if i == 0 && len(s.Boxes) == 1 {
			beside, record = record, ""
			under, netMap = netMap+output, ""
		}
		if len(s.Boxes) > 1 {
			box.Cgroup = ownCgroup(box.Cgroup)
		}
		b.WriteString(liveBox(box, under, beside, layout))
	}
	if mapBeside {
		fmt.Fprintf(&b, `<div id="netmap">%s</div>`, netSVG(*s.Net, narrowNet))
		netMap = ""
	}
	b.WriteString(`</div>`)
	if netMap != "" {
		fmt.Fprintf(&b, `<div id="below">%s%s</div>`, netMap, record)
		return b.String()
	}
	b.WriteString(record)
	return b.String()
}

func liveHeader(s LiveState) string {
	var b strings.Builder
	if l := s.Lesson; l != nil && l.End != nil {
		fmt.Fprintf(&b, `<div id="lesson" class="done"><span class="what">Lesson %d · finished</span> %s</div>`, l.Number, esc(l.Title))
	} else if l != nil {
		mark, class := "not yet", "pending"
		if l.Pass {
			mark, class = "✓ check passes", "pass"
		}
		fmt.Fprintf(&b, `<div id="lesson" class="%s"><span class="what">Lesson %d · step %d of %d</span> %s <span class="check" title="%s">%s</span></div>`,
			class, l.Number, l.Step, l.Steps, esc(l.StepTitle), esc(l.Saw), mark)
	}
	if s.Line != "" {
		class := "ok"
		switch {
		case s.Running:
			class = "running"
		case s.Failed != "":
			class = "failed"
		}
		fmt.Fprintf(&b, `<div id="line" class="%s"><span class="prompt">▸</span> <code>%s</code>`, class, esc(s.Line))
		if s.Running {
			b.WriteString(` <span class="state">running…</span>`)
		}
		if s.Failed != "" && !s.Running {
			fmt.Fprintf(&b, ` <span class="error">%s</span>`, esc(s.Failed))
		}
		b.WriteString(`</div>`)
	}
	return b.String()
}

// ownCgroup is snap with only the box's own cgroup under stepbox's
// parent: two boxes side by side would each draw the whole tree.
func ownCgroup(snap *cgroups.Snapshot) *cgroups.Snapshot {
	if snap == nil || snap.BoxGroup == "" {
		return snap
	}
	own := *snap
	own.Parent.Children = nil
	for _, c := range snap.Parent.Children {
		if c.Name == snap.BoxGroup {
			own.Parent.Children = append(own.Parent.Children, c)
		}
	}
	return &own
}

// How a box's section is laid out.
const (
	boxWide       = iota // alone: namespaces, stack, cgroup in three columns
	boxNarrow            // beside a second box: namespaces | cgroup over stack
	boxNamespaces        // beside a second box and the network map: namespaces alone
)

// liveBox is one box's section: namespaces around its processes, its
// layer stack and its cgroup, each as SVG or a line saying which step
// makes it; under goes below the stack, beside below the cgroup.
// Beside a second box (boxNarrow) it is two columns: the namespaces, and
// the cgroup over a stack of bands alone, drawn narrower so their text
// stays as large; with the network map too (boxNamespaces), the
// namespaces alone and a line for the stages not reached.
func liveBox(box LiveBox, under, beside string, layout int) string {
	var b strings.Builder
	host := ""
	if box.Hostname != "" {
		host = fmt.Sprintf(` <span class="hostname">hostname %s</span>`, esc(Escape(box.Hostname))) // sethostname(2) in the box
	}
	class, current := "box", ""
	if box.Current && layout != boxWide {
		class, current = "box current", ` <span class="current">◀ current</span>`
	}
	fmt.Fprintf(&b, `<section class="%s" data-box="%s"><h2>box %s%s%s <span class="stage">%s</span></h2><div class="panels">`,
		class, esc(box.Name), esc(box.Name), current, host, esc(box.Stage))
	nsSize := aloneNS
	stack := func(s rootfs.StackSnapshot) string { return stackSVG(s, aloneStack) }
	cgroup := func(c cgroups.Snapshot, before *cgroups.Snapshot) string { return cgroupSVG(c, before, aloneCgroup) }
	if layout != boxWide {
		nsSize, stack, cgroup = narrowNS, stackNarrowSVG, cgroupNarrowSVG
	}
	b.WriteString(`<div class="col ns">`)
	if box.Namespaces != nil {
		b.WriteString(namespaceSVG(*box.Namespaces, box.Before, box.Processes, nsSize))
	}
	b.WriteString(`</div>`)
	stackCol := func() {
		if box.Stack != nil {
			b.WriteString(stack(*box.Stack))
		} else {
			b.WriteString(`<p class="todo">No root filesystem yet: <code>mount overlay base</code> stacks one.</p>`)
		}
		b.WriteString(under)
	}
	cgroupCol := func() {
		if box.Cgroup != nil {
			b.WriteString(cgroup(*box.Cgroup, box.CgroupBefore))
		} else {
			b.WriteString(`<p class="todo">No cgroup yet: <code>cgroup new</code> makes one.</p>`)
		}
		b.WriteString(beside)
	}
	switch layout {
	case boxNamespaces:
		b.WriteString(boxBrief(box))
	case boxNarrow:
		b.WriteString(`<div class="col side">`)
		cgroupCol()
		stackCol()
		b.WriteString(`</div>`)
	default:
		b.WriteString(`<div class="col stack">`)
		stackCol()
		b.WriteString(`</div><div class="col cg">`)
		cgroupCol()
		b.WriteString(`</div>`)
	}
	b.WriteString(`</div>`)
	for _, e := range box.Errors {
		fmt.Fprintf(&b, `<p class="error">%s</p>`, esc(e))
	}
	b.WriteString(`</section>`)
	return b.String()
}

// The step record's limits: calls and shell lines sent before "… N more",
// and the columns a call is cut to (its longest path loses its middle).
// The page's script hides the last ones until the page fits the screen,
// and counts them in the "… N more" line (stepFitted).
// Without the script, only the first stepCallsSpare calls and
// stepShellSpare shell lines show: the rest are "spare".
const (
	stepCallsShown = 40
	stepShellShown = 20
	stepCallsSpare = 8
	stepShellSpare = 4
	stepCallCols   = 44
	stepShellCols  = 120
)

// cutEnd cuts s to n runes at most, at the end, before the last space,
// comma or '=' before it, so that no number or
// word is cut in its middle; the cut is marked "…".
func cutEnd(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	at := n - 1
	for i := n - 1; i > 0; i-- {
		if r[i] == ' ' || r[i] == ',' || r[i] == '=' {
			at = i + 1
			break
		}
	}
	return string(r[:at]) + "…"
}

// moreLine is the "… N more" line after a list of n items of which
// sent were sent; data-cut is how many were not. Without the script
// the items past spare are hidden too and counted; the script counts
// the ones it hides to fit the screen instead.
func moreLine(n, sent, spare int, tag, why string) string {
	cut, shown := max(0, n-sent), max(0, n-spare)
	hidden := ""
	if shown == 0 {
		hidden = ` hidden=""`
	}
	return fmt.Sprintf(`<%s class="more" data-cut="%d" data-why="%s"%s>… %d more%s</%s>`, tag, cut, esc(why), hidden, shown, esc(why), tag)
}

// StepHTML is the last step's record as the page shows it: what it did,
// its syscalls in strace form, the same with standard tools, man pages.
func StepHTML(s *step.Step) string { return stepHTML(s, "") }

// stepHTML is StepHTML with output, the tail of the output of the last
// line the shell ran (a `!` command or a look may follow the step),
// under its summary.
func stepHTML(s *step.Step, output string) string {
	var b strings.Builder
	// The man pages go beside the title: a line of their own under
	// the shell lines cost the page a line it needs for the drawings.
	man := ""
	if len(s.Man) > 0 {
		man = fmt.Sprintf(` <span class="man">man %s</span>`, esc(strings.Join(s.Man, ", ")))
	}
	fmt.Fprintf(&b, `<section id="step"><h2>last step: <code>%s</code>%s</h2>`, esc(s.Command), man)
	// Escaped as explain escapes it (StepPanel): the summary may name
	// what an image holds.
	if s.Summary != "" {
		fmt.Fprintf(&b, `<p class="summary">%s</p>`, esc(Escape(s.Summary)))
	}
	b.WriteString(output)
	b.WriteString(`<div class="record"><div><h3>syscalls</h3><ol class="calls">`)
	for i, c := range s.Calls {
		if i == stepCallsShown {
			break
		}
		class := "call"
		if strings.HasPrefix(c.Result, "-1") {
			class += " failed"
		}
		if i >= stepCallsSpare {
			class += " spare"
		}
		call, _, _ := strings.Cut(c.Syscall, "   # ")
		fmt.Fprintf(&b, `<li class="%s"><code>%s</code></li>`, class, esc(shortenArgs(call+" = "+c.Result, stepCallCols)))
	}
	b.WriteString(moreLine(len(s.Calls), stepCallsShown, stepCallsSpare, "li", " (explain shows them all)"))
	b.WriteString(`</ol></div><div><h3>with standard tools</h3><div class="shell">`)
	for i, l := range s.Shell {
		if i == stepShellShown {
			break
		}
		// The page has no room for the comments the shell lines carry.
		if cmd, _, ok := strings.Cut(l, "   # "); ok {
			l = cmd
		}
		class := "line"
		if i >= stepShellSpare {
			class += " spare"
		}
		// Wrapped by the page, and cut at the end only: a cut in the
		// middle made a PID read as another (`--target 3264…600`).
		fmt.Fprintf(&b, `<pre class="%s">%s</pre>`, class, esc(cutEnd(l, stepShellCols)))
	}
	b.WriteString(moreLine(len(s.Shell), stepShellShown, stepShellSpare, "p", ""))
	b.WriteString(`</div></div></div></section>`)
	return b.String()
}
