package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

func describeMachine() []string {
	var out []string
	if u, err := exec.Command("uname", "-srm").Output(); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(u)))
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				out = append(out, fmt.Sprintf("cpu: %s × %d", strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")), runtime.NumCPU()))
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			out = append(out, fmt.Sprintf("memory: %.1f GiB", kb/1024/1024))
		}
	}
	mode := "v1 (legacy)"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		mode = "v2 (unified)"
	} else if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		mode = "hybrid (v1 controllers, empty v2 at unified/)"
	}
	out = append(out, "cgroups: "+mode)
	for _, v := range [][]string{{"runc", "--version"}, {"bwrap", "--version"}, {"hyperfine", "--version"}, {"unshare", "--version"}, {"go", "version"}} {
		if b, err := exec.Command(v[0], v[1:]...).Output(); err == nil {
			out = append(out, strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0])
		}
	}
	return out
}

func find(ts []timing, name string) (timing, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return timing{}, false
}

// verdict says whether got meets "≤ limit", and by how much it misses.
func verdict(got, limit float64) string {
	if got <= limit {
		return "met"
	}
	return fmt.Sprintf("**missed** by %.0f%%", (got/limit-1)*100)
}

func (r *results) markdown(byHand, reliability string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# stepbox, measured")
	w("")
	w("Written by `make bench` (bench/run.sh → `go run ./bench`) on %s.", r.Date.Format("2006-01-02 15:04 UTC"))
	if r.Note != "" {
		w("")
		w("> **%s**", r.Note)
	}
	w("")
	w("Machine: %s. Load average %s before, %s after.", strings.Join(r.Machine, "; "), r.LoadBefore, r.LoadAfter)
	w("")
	w("## Side by side: the full container")
	w("")
	w("New box, namespaces uts ipc net pid mnt, overlay of `base` + `fileA`, pivot_root, /proc, a cgroup with pids.max 64 and a 64M memory limit, attach, `exec true`, teardown, as one `stepbox run` (a whole session: start, layer check, every step, teardown). runc runs the same tree (a copy of `base` with `fileA` on top) with the same namespaces and limits (config from `runc spec`, trimmed to /proc and /dev, no masked paths, no hostname); runc also makes /dev's nodes, device rules, capabilities and no_new_privs, stepbox the overlay, its tmpfs, its ledger and tracking cgroup; bwrap is `bwrap --unshare-all --bind ROOTFS / --proc /proc --dev /dev true`. hyperfine, %d runs after %d warm-up runs; times in ms.", r.Runs, r.Warmup)
	w("")
	w("| command | median | mean ± σ | min … max | stepbox ÷ this | target | |")
	w("| --- | ---: | ---: | ---: | ---: | --- | --- |")
	sb, _ := find(r.Full, "stepbox run")
	// Issue 14's target against runc; bwrap's is the first engine's.
	targets := map[string]float64{"runc run": 0.8, "bwrap": 1.5}
	for _, t := range r.Full {
		ratio, target, v := "", "", ""
		if t.Name != "stepbox run" && t.Median > 0 {
			q := sb.Median / t.Median
			ratio = fmt.Sprintf("%.2f×", q)
			if lim, ok := targets[t.Name]; ok {
				target, v = fmt.Sprintf("≤ %.1f×", lim), verdict(q, lim)
			}
		}
		w("| `%s` | %.1f | %.1f ± %.1f | %.1f … %.1f | %s | %s | %s |", t.Name, t.Median, t.Mean, t.Sigma, t.Min, t.Max, ratio, target, v)
	}
	w("")
	w("## Side by side: namespaces only (issue 2)")
	w("")
	w("`new`, `unshare uts ipc net pid mnt cgroup`, `hostname`, `exec true`, `rm` as one `stepbox run`, against `unshare -m -u -i -n -p -C -f true`.")
	w("")
	w("| command | median ms | mean ± σ | stepbox ÷ unshare | target | |")
	w("| --- | ---: | ---: | ---: | --- | --- |")
	ns, _ := find(r.Namespaces, "stepbox run")
	un, _ := find(r.Namespaces, "unshare")
	for _, t := range r.Namespaces {
		ratio, target, v := "", "", ""
		if t.Name == "stepbox run" && un.Median > 0 {
			q := ns.Median / un.Median
			ratio, target, v = fmt.Sprintf("%.2f×", q), "≤ 1.5×", verdict(q, 1.5)
		}
		w("| `%s` | %.1f | %.1f ± %.1f | %s | %s | %s |", t.Name, t.Median, t.Mean, t.Sigma, ratio, target, v)
	}
	w("")
	r.stepTable(w)
	if byHand != "" {
		w(byHand)
		w("")
	}
	r.scaleTable(w)
	w(reliability)
	return b.String()
}

// stepNames is the order of BenchmarkContainerSteps' sub-benchmarks.
var stepNames = []string{"new", "unshare_uts", "unshare_ipc", "unshare_net", "unshare_pid", "unshare_mnt",
	"mount_overlay", "pivot_root", "mount_proc", "cgroup_new", "cgroup_limit_pids", "cgroup_limit_memory",
	"cgroup_attach", "exec_true", "rm"}

func (r *results) stepTable(w func(string, ...any)) {
	w("## Each step inside one session")
	w("")
	w("`BenchmarkContainerSteps` (primitives): one session, every iteration builds a box up to the step untimed, then times the step. Targets (issue 14): p50 ≤ 1 ms for every step, ≤ 1.5 ms for `rm`; `unshare net` has none, and `cgroup attach` on cgroup v1 waits for the kernel's RCU grace period (reported apart).")
	w("")
	w("| step | p50 ms | p99 ms | target | |")
	w("| --- | ---: | ---: | --- | --- |")
	for _, s := range stepNames {
		v, ok := r.Bench["BenchmarkContainerSteps/"+s]
		if !ok {
			w("| %s | – | – | | not run |", s)
			continue
		}
		target, verd := "≤ 1", verdict(v["p50-ms"], 1)
		switch s {
		case "rm":
			target, verd = "≤ 1.5", verdict(v["p50-ms"], 1.5)
		case "unshare_net":
			target, verd = "(none)", ""
		case "cgroup_attach":
			target, verd = "(apart: RCU on v1)", ""
		}
		w("| %s | %.2f | %.2f | %s | %s |", strings.ReplaceAll(s, "_", " "), v["p50-ms"], v["p99-ms"], target, verd)
	}
	w("")
}

func (r *results) scaleTable(w func(string, ...any)) {
	get := func(name, unit string) string {
		if v, ok := r.Bench[name][unit]; ok {
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
		return "–"
	}
	ms := func(name string) string {
		// A benchmark that reports its median (the REPL start) is judged by it.
		if v, ok := r.Bench[name]["median-ms"]; ok {
			return strconv.FormatFloat(v, 'f', 2, 64) + " (median)"
		}
		if v, ok := r.Bench[name]["ns/op"]; ok {
			return strconv.FormatFloat(v/1e6, 'f', 2, 64)
		}
		return "–"
	}
	w("## Scale and memory")
	w("")
	w("| measure | value | target |")
	w("| --- | ---: | --- |")
	w("| 50 full containers alive in one session: time per box (ms) | %s | |", get("BenchmarkFiftyBoxes", "ms/box"))
	w("| 50 boxes: box process + PID 1 resident per box (MB, VmRSS) | %s | |", get("BenchmarkFiftyBoxes", "box-MB/box"))
	w("| 50 boxes: session growth per box (KB) | %s | |", get("BenchmarkFiftyBoxes", "session-KB/box"))
	w("| 100-layer overlay (base + 100): `mount overlay` (ms) | %s | mounts |", get("BenchmarkHundredLayers", "mount-ms"))
	w("| 100-layer overlay: `stack` renders (ms) | %s | renders |", get("BenchmarkHundredLayers", "stack-ms"))
	w("| `stack --files`, 1,000-file layer + base (ms) | %s | ≤ 50 |", ms("BenchmarkStackFiles/1000"))
	w("| `stack --files`, 10,000-file layer + base (ms) | %s | |", ms("BenchmarkStackFiles/10000"))
	w("| overlay of 3 layers, median (µs) | %s | |", get("BenchmarkOverlayPivotProc", "overlay-µs"))
	w("| pivot_root, median (µs) | %s | |", get("BenchmarkOverlayPivotProc", "pivot_root-µs"))
	w("| mount proc, median (µs) | %s | |", get("BenchmarkOverlayPivotProc", "proc-µs"))
	w("| `image load` of a 100 MB, 5-layer OCI layout: blobs checked, layers unpacked (ms) | %s | |", get("BenchmarkLoadHundredMBImage", "ms/image"))
	w("| the same: peak resident memory of the process meanwhile (MB, VmHWM) | %s | < 64 |", get("BenchmarkLoadHundredMBImage", "peak-MB"))
	w("| live view: a step's redraw reaches the event stream, p95 (ms) | %s | ≤ 50 |", get("BenchmarkLiveViewRedraw", "p95-ms"))
	w("| live view: session heap growth after 60 steps with a browser (MB) | %s | ≤ 16 |", get("BenchmarkLiveViewRedraw", "heap-MB-after-60"))
	w("| `net veth` + `net addr` + `net route`, one box, p50 (ms) | %s | ≤ 5 |", get("BenchmarkNetVethAddrRoute", "p50-ms"))
	w("| `net` map with 20 wired boxes, read and drawn, p50 (ms) | %s | ≤ 10 |", get("BenchmarkNetMap20Boxes", "p50-ms"))
	w("| first ping between two boxes, round trip as ping reports it, p50 (ms) | %s | |", get("BenchmarkNetFirstPingBetweenBoxes", "p50-ms"))
	m := r.Memory
	w("| session holding the full container: VmRSS / PSS (MB) | %.1f / %.1f | ≤ 40 |", m.SessionRSS, m.SessionPSS)
	w("| its box process: VmRSS / PSS (MB) | %.1f / %.1f | ≤ 10 |", m.BoxRSS, m.BoxPSS)
	w("| its PID 1: VmRSS / PSS (MB) | %.1f / %.1f | ≤ 10 |", m.InitRSS, m.InitPSS)
	w("")
	var other []string
	for name := range r.Bench {
		if strings.HasPrefix(name, "BenchmarkContainerSteps") || strings.HasPrefix(name, "BenchmarkFiftyBoxes") ||
			strings.HasPrefix(name, "BenchmarkHundredLayers") || strings.HasPrefix(name, "BenchmarkStackFiles") ||
			strings.HasPrefix(name, "BenchmarkOverlayPivotProc") || strings.HasPrefix(name, "BenchmarkLoadHundredMBImage") ||
			strings.HasPrefix(name, "BenchmarkLiveViewRedraw") || strings.HasPrefix(name, "BenchmarkNet") {
			continue
		}
		other = append(other, name)
	}
	sort.Strings(other)
	w("## Other benchmarks of the packages (REPL start, panels…)")
	w("")
	w("Issue 5's targets: REPL start to first prompt ≤ 50 ms median; any panel ≤ 5 ms.")
	w("")
	w("| benchmark | ms/op |")
	w("| --- | ---: |")
	for _, name := range other {
		w("| %s | %s |", name, ms(name))
	}
	w("")
}

const reliabilityStart, reliabilityEnd = "<!-- reliability -->", "<!-- /reliability -->"

const byHandStart, byHandEnd = "<!-- by hand -->", "<!-- /by hand -->"

// byHandSection keeps what engineers measured and wrote by hand (the
// rounds of issue 14's cuts, traced by phase): a new `make bench` adds
// its tables around it and never loses it.
func byHandSection(old string) string {
	if i := strings.Index(old, byHandStart); i >= 0 {
		if j := strings.Index(old[i:], byHandEnd); j >= 0 {
			return old[i : i+j+len(byHandEnd)]
		}
	}
	return ""
}

// reliabilitySection keeps the section `make soak` wrote, or says how to get one.
func reliabilitySection(old string) string {
	if i := strings.Index(old, reliabilityStart); i >= 0 {
		if j := strings.Index(old[i:], reliabilityEnd); j >= 0 {
			return old[i : i+j+len(reliabilityEnd)]
		}
	}
	return reliabilityStart + "\n## Reliability\n\nNot run yet: `make soak` fills this section.\n" + reliabilityEnd
}

var soakFigure = regexp.MustCompile(`soak: (.*)$`)
var fuzzLine = regexp.MustCompile(`^fuzz: elapsed: (\S+), execs: (\d+) `)
var testResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// writeReliability puts the figures of a `make soak` log into out's
// reliability section.
func writeReliability(out, logPath, statsDir string) error {
	f, err := os.Open(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var figures, results []string
	var fuzz []string
	target := ""
	execs := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if t, ok := strings.CutPrefix(line, "== fuzz "); ok {
			target = strings.TrimSpace(t)
		}
		if m := soakFigure.FindStringSubmatch(line); m != nil {
			figures = append(figures, m[1])
		}
		if m := fuzzLine.FindStringSubmatch(line); m != nil && target != "" {
			execs[target] = m[2] + " in " + m[1]
		}
		if m := testResult.FindStringSubmatch(line); m != nil && !strings.Contains(m[2], "/") {
			results = append(results, m[1]+" "+m[2])
		}
	}
	for _, t := range []string{"FuzzCommandLine", "FuzzScriptRunner"} {
		if e, ok := execs[t]; ok {
			run, rej := counted(statsDir, t)
			fuzz = append(fuzz, fmt.Sprintf("| %s | %s | %s | %s |", t, e, run, rej))
		}
	}
	var b strings.Builder
	b.WriteString(reliabilityStart + "\n## Reliability (`make soak`)\n\n")
	b.WriteString("| test | result |\n| --- | --- |\n")
	for _, r := range results {
		s, name, _ := strings.Cut(r, " ")
		fmt.Fprintf(&b, "| %s | %s |\n", name, s)
	}
	b.WriteString("\nFigures the tests logged:\n\n")
	for _, fg := range figures {
		fmt.Fprintf(&b, "- %s\n", fg)
	}
	b.WriteString("\n| fuzz target | go test's execs | inputs the target ran (its own count) | of them rejected, each with a one-line error naming the command |\n| --- | ---: | ---: | ---: |\n")
	for _, l := range fuzz {
		b.WriteString(l + "\n")
	}
	b.WriteString(reliabilityEnd)
	old, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	text := string(old)
	cur := reliabilitySection(text)
	if strings.Contains(text, cur) {
		text = strings.Replace(text, cur, b.String(), 1)
	} else {
		text += "\n" + b.String() + "\n"
	}
	return os.WriteFile(out, []byte(text), 0o644)
}

// counted adds up what the fuzz workers of target counted (see
// repl/fuzz_test.go): the inputs they ran and how many were rejected.
// go test's own execs lag behind for a slow target, whose worker reports
// only between batches.
func counted(dir, target string) (run, rejected string) {
	if dir == "" {
		return "–", "–"
	}
	files, _ := filepath.Glob(filepath.Join(dir, target+"-*"))
	var n, r int64
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		var name string
		var a, c int64
		if _, err := fmt.Sscan(string(raw), &name, &a, &c); err == nil {
			n, r = n+a, r+c
		}
	}
	if n == 0 {
		return "–", "–"
	}
	return fmt.Sprint(n), fmt.Sprint(r)
}
