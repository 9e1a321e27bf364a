package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
)

// pageElements is what the live page shows, read from its own elements
// (the data-* attributes the drawings carry) by the browser.
type pageElements struct {
	Seq int
	NS  []struct {
		Box, Type, Types, Owner string
		Inode                   uint64
		Changed                 bool
	}
	Procs []struct {
		Box         string
		PID, BoxPID int
	}
	Layers []struct {
		Layer string
		Files int
	}
	Changes []struct{ Kind, Path string }
	Bars    []struct {
		Cgroup, Resource, Current, Max string
		Changed                        bool
	}
	Panels []struct {
		ID                       string
		Top, Bottom, Left, Right float64
	}
	ScrollW, ScrollH, ViewW, ViewH int
}

const readPage = `(() => {
	const q = s => Array.from(document.querySelectorAll(s));
	const box = e => e.closest("section.box").dataset.box;
	return {
		seq: Number(document.getElementById("now").dataset.seq),
		ns: q("g.ns").map(g => ({box: box(g), type: g.dataset.type, types: g.dataset.types, owner: g.dataset.owner, inode: Number(g.dataset.inode), changed: g.classList.contains("changed")})),
		procs: q("g.proc").map(g => ({box: box(g), pid: Number(g.dataset.pid), boxPID: Number(g.dataset.boxpid)})),
		layers: q("g.layer").map(g => ({layer: g.dataset.layer, files: Number(g.dataset.files)})),
		changes: q("g.change").map(g => ({kind: g.dataset.kind, path: g.dataset.path})),
		bars: q("g.bar").map(g => ({cgroup: g.closest("g.cgroup").dataset.cgroup, resource: g.dataset.resource, current: g.dataset.current, max: g.dataset.max, changed: g.classList.contains("changed")})),
		panels: q("svg.panel, #step").map(s => { const r = s.getBoundingClientRect(); return {id: s.id, top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }),
		scrollW: document.documentElement.scrollWidth, scrollH: document.documentElement.scrollHeight,
		viewW: innerWidth, viewH: innerHeight,
	};
})()`

// nsInode is the inode of /proc/PID/ns/TYPE, read from the kernel.
func nsInode(t *testing.T, pid int, typ string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, typ), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// artifactDir keeps a test's screenshots: $STEPBOX_ARTIFACTS/NAME, or
// a directory under the system's temp dir, named in the log.
func artifactDir(t *testing.T, name string) string {
	t.Helper()
	root := os.Getenv("STEPBOX_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "stepbox-artifacts")
	}
	dir := filepath.Join(root, name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestLiveViewDrawsTheBoxAsItIsBuilt loads the live page in headless
// Chromium, builds a container step by step, and after each step reads
// the page's own elements and compares them with the kernel's state;
// each step's screenshot at 1280×720 is kept and checked for columns
// left blank and for anything drawn past the screen.
func TestLiveViewDrawsTheBoxAsItIsBuilt(t *testing.T) {
	browser := needChromium(t)
	sh, out := liveShell(t)
	if err := sh.StartWeb("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.StopWeb() })
	url := sh.web.srv.URL
	c := startChromium(t, browser)
	c.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	c.waitSeq(t, 0)
	shots := artifactDir(t, "live-view")
	var elsewhere []string
	c.eval(t, `performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith(location.origin + "/"))`, &elsewhere)
	if len(elsewhere) > 0 {
		t.Errorf("the page loaded %v from elsewhere", elsewhere)
	}

	me := os.Getpid()
	// After `unshare uts ipc net mnt pid`: each namespace in the frame of
	// who has it, with the kernel's inode, and the step's new ones marked.
	unshared := func(t *testing.T, b *primitives.Box, p pageElements) {
		owner := map[string]string{"uts": "boxns", "ipc": "boxns", "net": "boxns", "mnt": "boxns", "pid": "initns", "cgroup": "host", "time": "host", "user": "host"}
		for _, ns := range p.NS {
			pid := map[string]int{"host": me, "boxns": b.PID(), "initns": b.InitPID()}[owner[ns.Type]]
			if ns.Owner != owner[ns.Type] || ns.Inode != nsInode(t, pid, ns.Type) {
				t.Errorf("%s drawn in %s's frame with inode %d; the kernel has it in %s's, inode %d", ns.Type, ns.Owner, ns.Inode, owner[ns.Type], nsInode(t, pid, ns.Type))
			}
			if made := owner[ns.Type] != "host"; ns.Changed != made {
				t.Errorf("%s marked as made by the step: %v, want %v", ns.Type, ns.Changed, made)
			}
			// Every type a chip covers is that inode in the kernel.
			for _, typ := range strings.Fields(ns.Types) {
				if ino := nsInode(t, pid, typ); ino != ns.Inode {
					t.Errorf("the %s chip covers %s, but %s is %d in the kernel, not %d", ns.Type, typ, typ, ino, ns.Inode)
				}
			}
		}
		if pid := chipTypes(p, "pid"); pid != "pid pid_for_children" {
			t.Errorf("PID 1's pid namespace is drawn covering %q, want pid and pid_for_children (one inode)", pid)
		}
		wantProc(t, p, b.InitPID(), 1)
	}
	// After `cgroup limit pids 20`, and the looks after it: the limit the
	// step set is marked; the others are not.
	limited := func(t *testing.T, b *primitives.Box, p pageElements) {
		for _, bar := range p.Bars {
			want := bar.Cgroup == b.Cgroup().Name && bar.Resource == "pids"
			if bar.Changed != want {
				t.Errorf("%s's %s bar (limit %s) marked as changed by the step: %v, want %v", bar.Cgroup, bar.Resource, bar.Max, bar.Changed, want)
			}
		}
	}
	steps := []struct {
		line  string
		check func(t *testing.T, b *primitives.Box, p pageElements)
	}{
		{"new web", func(t *testing.T, b *primitives.Box, p pageElements) {
			for _, ns := range p.NS {
				if ns.Owner != "host" || ns.Inode != nsInode(t, me, ns.Type) {
					t.Errorf("before any unshare, %s is drawn as %s's %d; the host's is %d", ns.Type, ns.Owner, ns.Inode, nsInode(t, me, ns.Type))
				}
			}
			if len(p.NS) != 8 {
				t.Errorf("%d namespaces drawn, want the 8 types", len(p.NS))
			}
			wantProc(t, p, b.PID(), b.PID())
		}},
		{"unshare uts ipc net mnt pid", unshared},
		{"ns", unshared}, // a look changes nothing: the step's marks stay
		{"mount overlay base", func(t *testing.T, b *primitives.Box, p pageElements) {
			base := b.FS().Layers[0]
			want := []string{"merged 0", "upper 0", fmt.Sprintf("base %d", countFiles(t, base.Dir))}
			var got []string
			for _, l := range p.Layers {
				got = append(got, fmt.Sprintf("%s %d", l.Layer, l.Files))
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("layer bands %v, want %v (files counted in %s)", got, want, base.Dir)
			}
		}},
		{"pivot_root", func(t *testing.T, b *primitives.Box, p pageElements) {
			for _, ns := range p.NS {
				if ns.Changed {
					t.Errorf("after pivot_root, %s is still marked as made by the last step", ns.Type)
				}
			}
		}},
		{"exec touch /test", func(t *testing.T, b *primitives.Box, p pageElements) {
			if _, err := os.Lstat(filepath.Join(b.FS().Upper, "test")); err != nil {
				t.Fatalf("the upper dir has no test: %v", err)
			}
			if len(p.Changes) != 1 || p.Changes[0].Kind != "+" || p.Changes[0].Path != "/test" {
				t.Errorf("upper dir drawn as %+v, want + /test", p.Changes)
			}
		}},
		{"cgroup new", nil},
		{"cgroup limit pids 20", limited},
		{"ns", limited}, // a look changes nothing: the limit stays marked
		{"cgroup attach", func(t *testing.T, b *primitives.Box, p pageElements) {
			g := b.Cgroup()
			found := false
			for _, bar := range p.Bars {
				if bar.Cgroup != g.Name || bar.Resource != "pids" {
					continue
				}
				found = true
				max, cur := cgroupValue(t, g.Dirs, "pids.max"), cgroupValue(t, g.Dirs, "pids.current")
				if bar.Max != max || bar.Current != cur {
					t.Errorf("pids bar drawn at %s of %s; the kernel's pids.current is %s of pids.max %s", bar.Current, bar.Max, cur, max)
				}
			}
			if !found {
				t.Errorf("no pids bar for cgroup %s among %+v", g.Name, p.Bars)
			}
			for _, bar := range p.Bars {
				if bar.Changed {
					t.Errorf("after cgroup attach, %s's %s bar is still marked as a changed limit", bar.Cgroup, bar.Resource)
				}
			}
		}},
		// The heaviest records: many syscalls, and a header of two lines.
		{"mount dev", nil},
		{"!echo " + strings.Repeat("a host line long enough to wrap the header ", 4), nil},
	}
	for i, s := range steps {
		run(t, sh, out, s.line)
		p := readRedraw[pageElements](t, sh, c, s.line, readPage)
		if s.check != nil {
			s.check(t, sh.Current(), p)
		}
		checkScreen(t, s.line, p, keepShot(t, c, shots, i+1, s.line))
		checkRecordCount(t, sh, c, s.line)
		checkTextSize(t, c, fmt.Sprintf("one box, after %q", s.line), 16)
	}

	// A line shows as running while it runs, and the processes that end
	// leave the drawing with the next second's reading, between steps.
	done := make(chan error, 1)
	go func() { done <- sh.Execute(context.Background(), "exec sh -c 'sleep 1 & sleep 2'") }()
	var running bool
	c.eval(t, `new Promise(ok => { const t0 = Date.now(); (function poll() {
		const l = document.querySelector("#line.running code");
		if (l && l.textContent.startsWith("exec sh")) return ok(true);
		if (Date.now() - t0 > 10000) return ok(false);
		setTimeout(poll, 10); })(); })`, &running)
	if err := <-done; err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	if !running {
		t.Error("while `exec sh -c 'sleep 1 & sleep 2'` ran, the header never showed it running")
	}
	run(t, sh, out, "exec sh -c 'sleep 2 >/dev/null 2>&1 &'")
	p := readRedraw[pageElements](t, sh, c, "exec sleep", readPage)
	var sleeps []int
	for _, pr := range p.Procs {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pr.PID)); err == nil && strings.TrimSpace(string(comm)) == "sleep" {
			sleeps = append(sleeps, pr.PID)
		}
	}
	if len(sleeps) == 0 {
		t.Errorf("the page draws %+v: no sleep left running in the background", p.Procs)
	}
	var gone bool
	c.eval(t, fmt.Sprintf(`new Promise(ok => { const t0 = Date.now(); const pids = %s; (function poll() {
		const shown = Array.from(document.querySelectorAll("g.proc")).map(g => Number(g.dataset.pid));
		if (!pids.some(p => shown.includes(p))) return ok(true);
		if (Date.now() - t0 > 15000) return ok(false);
		setTimeout(poll, 50); })(); })`, mustJSON(t, sleeps)), &gone)
	for _, pid := range sleeps {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil && !gone {
			t.Errorf("sleep %d has ended, but the page still draws it", pid)
		}
	}

	// A second box goes beside the first; the light theme is one key away.
	run(t, sh, out, "new db", "use web")
	p = readRedraw[pageElements](t, sh, c, "use web", readPage)
	boxes := map[string]bool{}
	for _, pr := range p.Procs {
		boxes[pr.Box] = true
	}
	if !boxes["web"] || !boxes["db"] {
		t.Errorf("two boxes, but the page draws processes of %v", boxes)
	}
	if p.ScrollW > p.ViewW || p.ScrollH > p.ViewH {
		t.Errorf("two boxes make the page %d×%d, more than the %d×%d screen", p.ScrollW, p.ScrollH, p.ViewW, p.ViewH)
	}
	// The heaviest record beside two boxes, under a header of two lines.
	run(t, sh, out, "cgroup limit pids 30", "!echo "+strings.Repeat("a host line long enough to wrap the header ", 4))
	p = readRedraw[pageElements](t, sh, c, "!echo", readPage)
	if p.ScrollW > p.ViewW || p.ScrollH > p.ViewH {
		t.Errorf("two boxes and a header of two lines make the page %d×%d, more than the %d×%d screen", p.ScrollW, p.ScrollH, p.ViewW, p.ViewH)
	}
	checkRecordCount(t, sh, c, "!echo")
	checkTextSize(t, c, "two boxes", 16)
	keep := func(name string) []byte {
		shot := c.screenshot(t)
		if err := os.WriteFile(filepath.Join(shots, name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
		return shot
	}
	checkScreen(t, "two boxes", p, keep(fmt.Sprintf("%02d-two-boxes.png", len(steps)+1)))
	for _, typ := range []string{"keyDown", "keyUp"} {
		c.call(t, "Input.dispatchKeyEvent", map[string]any{"type": typ, "key": "t", "text": "t"}, nil)
	}
	var theme string
	c.eval(t, `document.documentElement.className`, &theme)
	if theme != "light" {
		t.Errorf("after the key t the theme is %q, want light", theme)
	}
	img, err := png.Decode(bytes.NewReader(keep(fmt.Sprintf("%02d-two-boxes-light.png", len(steps)+1))))
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, _ := img.At(2, 700).RGBA(); r>>8 < 240 || g>>8 < 240 || b>>8 < 240 {
		t.Errorf("the light theme's background is %d,%d,%d", r>>8, g>>8, b>>8)
	}

	// Without JavaScript the page is the last state, drawn by the server.
	c.call(t, "Emulation.setScriptExecutionDisabled", map[string]any{"value": true}, nil)
	c.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	var still struct {
		Status string
		Chips  int
	}
	// Evaluating in the page fails while the navigation replaces it.
	for try := 0; ; try++ {
		var r struct {
			Result struct{ Value json.RawMessage }
		}
		err := c.try("Runtime.evaluate", map[string]any{"returnByValue": true, "expression": `document.readyState === "complete" && document.getElementById("now") ?
			{status: document.getElementById("status").textContent, chips: document.querySelectorAll("section.box g.ns").length} : null`}, &r)
		if err == nil && string(r.Result.Value) != "null" && json.Unmarshal(r.Result.Value, &still) == nil {
			break
		}
		if try == 300 {
			t.Fatalf("the page without JavaScript never loaded: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	keep(fmt.Sprintf("%02d-no-script.png", len(steps)+2))
	if still.Chips < 16 || still.Status != "the state when this page loaded" {
		t.Errorf("without JavaScript the page shows %d namespace chips (want both boxes' 16) and says %q", still.Chips, still.Status)
	}
}

// smallText is every piece of text the page shows smaller than a size:
// its CSS font size times the scale its SVG is drawn at, as rendered.
const smallText = `(min => {
	const out = [];
	const walk = document.createTreeWalker(document.getElementById("live"), NodeFilter.SHOW_TEXT);
	for (let n = walk.nextNode(); n; n = walk.nextNode()) {
		const e = n.parentElement;
		if (!n.textContent.trim() || e.getClientRects().length === 0) continue;
		const svg = e.closest("svg");
		const px = parseFloat(getComputedStyle(e).fontSize) * (svg ? svg.getScreenCTM().a : 1);
		if (px < min) out.push({text: n.textContent.trim().slice(0, 40), px: Math.round(px * 10) / 10});
	}
	return out;
})`

// checkTextSize fails a page that shows text smaller than px pixels: a
// class at the back of a room could not read it.
func checkTextSize(t *testing.T, c *chromium, when string, px float64) {
	t.Helper()
	var small []struct {
		Text string
		Px   float64
	}
	c.eval(t, fmt.Sprintf("%s(%g)", smallText, px-0.05), &small)
	for i, s := range small {
		if i == 5 {
			t.Errorf("… and %d more", len(small)-i)
			break
		}
		t.Errorf("with %s, %q is drawn %.1f px high, under %g px", when, s.Text, s.Px, px)
	}
}

// checkRecordCount checks that the calls the page shows and the count
// on its "… N more" line add up to the last step's calls.
func checkRecordCount(t *testing.T, sh *Shell, c *chromium, line string) {
	t.Helper()
	if sh.lastStep == nil {
		return
	}
	var shown struct {
		Calls int
		More  string
	}
	c.eval(t, `(() => { const m = document.querySelector("#step ol.calls .more");
		return {calls: document.querySelectorAll("#step ol.calls li.call:not([hidden])").length, more: m && !m.hidden ? m.textContent : ""}; })()`, &shown)
	more := 0
	if shown.More != "" {
		if _, err := fmt.Sscanf(shown.More, "… %d more", &more); err != nil {
			t.Errorf("after %q the record's last line is %q: %v", line, shown.More, err)
		}
	}
	if shown.Calls+more != len(sh.lastStep.Calls) {
		t.Errorf("after %q the record shows %d calls and %q; the step made %d", line, shown.Calls, shown.More, len(sh.lastStep.Calls))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readRedraw waits for the page to show the shell's last redraw, after
// line, and reads it with the script expr, whose value has its seq.
func readRedraw[T any](t *testing.T, sh *Shell, c *chromium, line, expr string) T {
	t.Helper()
	sh.web.mu.Lock()
	seq := sh.web.seq
	sh.web.mu.Unlock()
	c.waitSeq(t, seq)
	var raw json.RawMessage
	c.eval(t, expr, &raw)
	var shown struct{ Seq int }
	var p T
	if err := errors.Join(json.Unmarshal(raw, &shown), json.Unmarshal(raw, &p)); err != nil {
		t.Fatal(err)
	}
	if shown.Seq != seq {
		t.Fatalf("after %q the page shows redraw %d, want %d", line, shown.Seq, seq)
	}
	return p
}

// keepShot saves the page's screenshot after the i-th line in dir.
func keepShot(t *testing.T, c *chromium, dir string, i int, line string) []byte {
	t.Helper()
	shot := c.screenshot(t)
	name := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", i, strings.NewReplacer(" ", "-", "/", "", ":", "-").Replace(line)))
	if err := os.WriteFile(name, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	return shot
}

// chipTypes is the types the chip of typ covers.
func chipTypes(p pageElements, typ string) string {
	for _, ns := range p.NS {
		if ns.Type == typ {
			return ns.Types
		}
	}
	return ""
}

func wantProc(t *testing.T, p pageElements, pid, boxPID int) {
	t.Helper()
	for _, pr := range p.Procs {
		if pr.PID == pid && pr.BoxPID == boxPID {
			return
		}
	}
	t.Errorf("process %d (%d in the box) is not drawn; drawn: %+v", pid, boxPID, p.Procs)
}

// countFiles counts what is not a directory under dir, as the stack does.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// cgroupValue reads a control file from whichever of the group's dirs
// has it (one dir in v2, one per hierarchy in v1).
func cgroupValue(t *testing.T, dirs []cgroups.Dir, file string) string {
	t.Helper()
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d.Path, file)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s in %+v", file, dirs)
	return ""
}

// checkScreen fails a screenshot with something drawn past 1280×720, or
// with one of the three columns of a box left blank.
func checkScreen(t *testing.T, line string, p pageElements, shot []byte) {
	t.Helper()
	if p.ScrollW > p.ViewW || p.ScrollH > p.ViewH {
		t.Errorf("after %q the page is %d×%d, more than the %d×%d screen: a class would have to scroll", line, p.ScrollW, p.ScrollH, p.ViewW, p.ViewH)
	}
	for _, r := range p.Panels {
		if r.Right > float64(p.ViewW)+0.5 || r.Bottom > float64(p.ViewH)+0.5 {
			t.Errorf("after %q, %s reaches %.0f,%.0f: past the screen", line, r.ID, r.Right, r.Bottom)
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() != 720 {
		t.Fatalf("screenshot is %v, want 1280×720", b)
	}
	bg := img.At(2, b.Dy()-2)
	for col := range 3 {
		region := image.Rect(col*b.Dx()/3, 130, (col+1)*b.Dx()/3, 400)
		if inked(img, region, bg) < 0.01 {
			t.Errorf("after %q, column %d of the screenshot is blank", line, col+1)
		}
	}
}

// inked is the share of pixels in r that differ from the background.
func inked(img image.Image, r image.Rectangle, bg interface{ RGBA() (r, g, b, a uint32) }) float64 {
	br, bgG, bb, _ := bg.RGBA()
	n, total := 0, 0
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr != br || cg != bgG || cb != bb {
				n++
			}
			total++
		}
	}
	return float64(n) / float64(total)
}
