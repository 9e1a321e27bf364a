package primitives

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/probe"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// ProbeResult is one escape probe's answer, as the session accepts it.
type ProbeResult struct {
	probe.Result
	Closes string // for an open hole: the steps that close it
}

// ProbeNames lists the known probes, in the order they run: those that
// run inside the box, then the session's own from the host.
func ProbeNames() []string { return append(probe.Names(), probeOlder) }

// inBoxNames are the names of the probes that run inside the box, and
// whether the session's own probe of older processes is asked too. No
// names asks for every probe.
func inBoxNames(names []string) (inBox []string, older bool) {
	for _, n := range names {
		if n == probeOlder {
			older = true
		} else {
			inBox = append(inBox, n)
		}
	}
	return inBox, older || len(names) == 0
}

// maxProbeOutput bounds what the session reads of a probe's output: the
// box runs that process and may make it write anything.
const maxProbeOutput = 64 << 10

// probeTimeout bounds a probe's run inside the box: every probe takes
// well under a second, unless the box makes one wait on a path it reads
// (ut29 F10). The session then ends the process.
const probeTimeout = 8 * time.Second

// probeStderr splits what `stepbox __probe` wrote on stderr into where
// it was (running the probe it named last, a known name) and the rest,
// cut to printable text: the box may write anything there.
func probeStderr(s string) (running, reason string) {
	running = "had not started a probe"
	var rest []string
	for _, l := range strings.Split(s, "\n") {
		if n, ok := strings.CutPrefix(l, probe.Running); ok {
			if probe.Known(n) {
				running = "was running probe " + n
			}
			continue
		}
		if l != "" {
			rest = append(rest, l)
		}
	}
	return running, printable(strings.Join(rest, "; "), 300)
}

// threadRefused finds, in what `stepbox __probe` wrote on stderr, the Go
// runtime's words when the kernel refused it a thread (clone(2) EAGAIN,
// mostly a pids limit): the runtime then aborts with a crash dump that
// tells the learner nothing (ut35 G5). It returns that line, cut to
// printable text: the box may write anything there.
func threadRefused(stderr string) (string, bool) {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "pthread_create failed") || strings.Contains(l, "failed to create new OS thread") {
			return printable(l, 100), true
		}
	}
	return "", false
}

// pidsRoom says which pids limit left the box no room for a thread: its
// cgroup's pids.max when it has one, else the others that may.
func (b *Box) pidsRoom() string {
	if h, g, err := b.needCgroup(); err == nil {
		if st, err := h.Stats(g); err == nil && st.Pids != nil && st.Pids.Max != cgroups.Unlimited {
			return fmt.Sprintf("the box's cgroup %s allows %d tasks (pids.max %d, %d in use now), and every thread counts", g.Name, st.Pids.Max, st.Pids.Max, st.Pids.Current)
		}
	}
	return fmt.Sprintf("a pids limit left it no room: the box's cgroup's pids.max, or stepbox's cap for all boxes (%d tasks), every thread counting", cgroups.SessionPidsMax)
}

// Probe runs the named escape probes (all without names) inside the box,
// as its next command would run: the executor spawns `stepbox __probe`
// from a sealed copy of this binary, with the box's namespaces, root,
// cgroup and credentials. Nothing on the host changes.
func (b *Box) Probe(ctx context.Context, names []string) ([]ProbeResult, *step.Step, error) {
	if err := checkProbeNames(names); err != nil {
		return nil, nil, err
	}
	inBox, older := inBoxNames(names)
	var results []ProbeResult
	var st *step.Step
	if len(inBox) > 0 || len(names) == 0 {
		var err error
		if results, st, err = b.probeInBox(ctx, inBox); err != nil {
			return nil, st, err
		}
	} else {
		st = olderStep(names)
	}
	if older {
		r, err := b.olderProcesses()
		if err != nil {
			return nil, st, fmt.Errorf("probe %s: %w", probeOlder, err)
		}
		results = append(results, r)
	}
	if err := b.notByBoxMasks(ctx, results); err != nil {
		return nil, st, fmt.Errorf("probe: %w", err)
	}
	open, unknown := 0, ""
	for i, r := range results {
		if r.State == probe.Unknown {
			unknown += "; " + r.Name + " could not tell"
		}
		if r.State == probe.Open {
			open++
			if b.Has("user") {
				results[i].Closes = closesInOwnUserNS(r.Closes)
			}
		}
	}
	st.Tell(fmt.Sprintf("tried %s on box %s: %d found a way out%s; nothing on the host was changed", step.Count(len(results), "probe"), b.Name, open, unknown), "")
	return results, st, nil
}

// notByBoxMasks makes a probe unknown that found its files masked (and
// said closed, or found no kernel's file there) by a mount the box made
// itself and can unmount: that mask closes nothing (ut29 F5).
func (b *Box) notByBoxMasks(ctx context.Context, results []ProbeResult) error {
	for i, r := range results {
		paths := probe.MaskedPaths(r.Name)
		if r.State == probe.Open || r.Via == probe.Traced || len(paths) == 0 {
			continue
		}
		// Decided on the whole table only: a cut read fails the probe.
		tctx, cancel := context.WithTimeout(ctx, rootfs.StepReadTime)
		masks, err := b.boxMasks(tctx, paths)
		cancel()
		if err != nil {
			return fmt.Errorf("box %s: cannot tell who masks %s: %w", b.Name, strings.Join(paths, ", "), err)
		}
		var by []string
		for _, p := range paths {
			if m, ok := masks[p]; ok && !slices.Contains(by, m) {
				by = append(by, m)
			}
		}
		if len(by) == 0 {
			continue
		}
		results[i].State, results[i].Via = probe.Unknown, probe.BoxMask
		results[i].Evidence = printable(fmt.Sprintf("masked by the box itself, which can unmount it: %s; the probe saw: %s", strings.Join(by, ", "), r.Evidence), 400)
		results[i].Closes = closesBoxMask
	}
	return nil
}

// closesBoxMask is what makes a mask count that the box made itself.
const closesBoxMask = "`mount mask` (stepbox's own masks, after the box's are unmounted); caps docker (no CAP_SYS_ADMIN to unmount a mask)"

// probeInBox runs the named probes (all without names) inside the box.
func (b *Box) probeInBox(ctx context.Context, names []string) ([]ProbeResult, *step.Step, error) {
	host, err := probeHost()
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	run, argv, opened, err := probeLauncher()
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	defer closeAll(opened)
	// The probes read /proc/self/mountinfo, and a dynamic stepbox is
	// loaded from /proc/self/fd/N: after chroot or pivot_root without a
	// /proc the probe could only fail (ut34 F9).
	why := "which the probes read (/proc/self/mountinfo, /proc/PID/root)"
	if run.Name != "stepbox" {
		why = "which the dynamic loader needs to run stepbox from descriptors (/proc/self/fd/N)"
	}
	if err := b.needProc(ctx, why); err != nil {
		return nil, nil, err
	}
	f := b.FS()
	host.OwnRoot = f.Pivoted || f.Chrooted
	host.Hold = true // on the pipe in, closed once the session has looked (tracerWatch)
	argv = append(argv, host.Args(names)...)
	st, err := b.PlanProbe(names)
	if err != nil {
		return nil, nil, err
	}
	st.Ran()
	var out, errs capped
	bounded, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// Read now: the box is locked while its command runs.
	in, release, err := os.Pipe()
	if err != nil {
		return nil, st, fmt.Errorf("probe: %w", err)
	}
	watch := &tracerWatch{box: b.PID(), release: release}
	run.Watch = watch.start
	es, err := b.exec(bounded, argv, nil, Stdio{In: in, Out: &out, Err: &errs}, st, run)
	watch.let()
	in.Close()
	running, reason := probeStderr(errs.String())
	timedOut := ctx.Err() == nil && errors.Is(bounded.Err(), context.DeadlineExceeded)
	if watch.traced() && (err == nil || timedOut) {
		// Whatever it did, held up, killed or wrote, was the tracer's.
		return refusedResults(names, watch.refused()), st, nil
	}
	if timedOut {
		return nil, st, fmt.Errorf("probe: stepbox __probe in box %s did not finish within %s and was ended: it %s; the box made it wait (stopped it, or put a file system of its own that does not answer where the kernel's file should be)", b.Name, probeTimeout, running)
	}
	if err != nil {
		return nil, st, fmt.Errorf("probe: %w", err)
	}
	if said, ok := threadRefused(errs.String()); ok && es.Code != 0 {
		return nil, st, fmt.Errorf("probe: stepbox __probe in box %s could not start a thread and ended (status %d; the Go runtime said %q): %s; the probe, a Go program, needs a few tasks of its own: raise the limit with `cgroup limit pids N` (or max), or probe before `cgroup limit pids`",
			b.Name, es.Code, said, b.pidsRoom())
	}
	if es.Code != 0 {
		return nil, st, fmt.Errorf("probe: stepbox __probe in box %s exited with status %d (it %s): %s", b.Name, es.Code, running, reason)
	}
	results, err := parseProbeReport(out.Bytes(), names)
	if err != nil {
		return nil, st, fmt.Errorf("probe: box %s: %w", b.Name, err)
	}
	if why := watch.refused(); why != "" {
		return refusedResults(names, why), st, nil
	}
	b.cgroupNSAtHostRoot(results)
	return results, st, nil
}

// cgroupNSAtHostRoot reports cgroup_escape open where the box's cgroup
// namespace is rooted at the host's root cgroup of a hierarchy: made
// while the box was still in the session's cgroup there, which is the
// root on a host whose stepbox runs in the root of its v1 hierarchies.
// From inside, that root looks like any other: /proc/self/cgroup says /
// (ut35 G3: the probe said closed, "the root of every hierarchy it can
// see", and the box mounted cpu and found a writable release_agent).
// Only the host tells: the box's own /proc/PID/cgroup, read from here.
func (b *Box) cgroupNSAtHostRoot(results []ProbeResult) {
	i := slices.IndexFunc(results, func(r ProbeResult) bool { return r.Name == "cgroup_escape" })
	if i < 0 || results[i].State == probe.Open {
		return
	}
	pid := b.CommandPID()
	var box, host unix.Stat_t
	if pid <= 0 || unix.Stat(fmt.Sprintf("/proc/%d/ns/cgroup", pid), &box) != nil || unix.Stat("/proc/self/ns/cgroup", &host) != nil || box.Ino == host.Ino {
		return // the host's namespace: the probe's own ways answer
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return
	}
	var at []string
	for _, c := range cgs {
		if c.Path != "/" {
			continue
		}
		name := strings.Join(c.Controllers, ",")
		if c.HierarchyID == 0 {
			name = "cgroup2"
		}
		at = append(at, name)
	}
	if len(at) == 0 {
		return
	}
	r := probe.Result{Name: "cgroup_escape", State: probe.Open, Via: "nsroot",
		Evidence: fmt.Sprintf("the box's cgroup namespace is rooted at the host's root cgroup of the %s hierarchies (/proc/%d/cgroup, read from the host, says /): it was made while the box was still in the session's cgroup there, and it shows the box the host's whole cgroup tree (release_agent, every session's cgroups); from inside, that root looks like the box's own", strings.Join(at, " "), pid)}
	results[i].Result = r
	results[i].Closes, _ = probe.Closes(r.Name, r.Via)
}

// needProc checks that the box has a proc filesystem at /proc, which
// the probe needs for why.
func (b *Box) needProc(ctx context.Context, why string) error {
	f := b.FS()
	if !f.Pivoted && !f.Chrooted {
		return nil // the host's /proc, or the box's mounted over it
	}
	proc := false
	// Decided on the whole table only: a cut read fails the probe.
	ctx, cancel := context.WithTimeout(ctx, rootfs.StepReadTime)
	defer cancel()
	err := rootfs.ScanMounts(ctx, "/proc", b.CommandPID(), func(m rootfs.Mount) error {
		proc = proc || m.Point == "/proc" && m.FSType == "proc"
		return nil
	})
	if err != nil {
		return fmt.Errorf("probe: box %s: cannot tell whether it has a /proc: %w", b.Name, err)
	}
	if proc {
		return nil
	}
	return fmt.Errorf("probe: box %s has no /proc, %s: `mount proc` first", b.Name, why)
}

func checkProbeNames(names []string) error {
	for _, n := range names {
		if !probe.Known(n) && n != probeOlder {
			return fmt.Errorf("probe %s: unknown probe %q: known probes are %s", strings.Join(names, " "), n, strings.Join(ProbeNames(), ", "))
		}
	}
	return nil
}

// PlanProbe is the record `probe NAME…` will write.
func (b *Box) PlanProbe(names []string) (*step.Step, error) {
	if err := checkProbeNames(names); err != nil {
		return nil, err
	}
	if inBox, _ := inBoxNames(names); len(inBox) == 0 && len(names) > 0 {
		st := olderStep(names)
		st.MarkNotRun()
		return st, nil
	}
	st, err := b.PlanExec(append([]string{"stepbox", entryProbe}, names...))
	if err != nil {
		return nil, err
	}
	st.Command = strings.TrimSpace("probe " + strings.Join(names, " "))
	from, man := selfExeFrom()
	st.Calls[len(st.Calls)-2].Syscall = fmt.Sprintf("execveat(FD, \"\", [\"stepbox\", %q, …], …, AT_EMPTY_PATH)   # %s (through the host's ELF interpreter when stepbox is dynamic)", entryProbe, from)
	st.Man = append(st.Man, "execveat(2)", man, "access(2)", "open_by_handle_at(2)", "finit_module(2)", "syslog(2)")
	st.Undo = "nothing to undo: the probes read and ask for permission, and write nothing on the host; a device node made in the box's own root is removed at once, and mounts go into a mount namespace that ends with the probe"
	st.Tell("tried each escape from inside the box, as the box's next command", "will try each escape from inside the box, as the box's next command, and report it open or closed")
	st.MarkNotRun()
	return st, nil
}

// olderStep is the record of a probe the session runs from the host
// alone: it reads /proc, and runs nothing in the box.
func olderStep(names []string) *step.Step {
	return &step.Step{Command: "probe " + strings.Join(names, " "), Man: []string{"proc(5)"},
		Undo: "nothing to undo: the session only read /proc/PID/status and /proc/PID/ns/user of the box's processes"}
}

// probeHost is what the probes must know of the host to tell its files
// from the box's: a host file with its handle, the block devices, the
// PID namespace.
func probeHost() (probe.Host, error) {
	var h probe.Host
	for _, f := range []string{"/etc/hostname", "/etc/os-release", "/etc/passwd"} {
		var st unix.Stat_t
		if unix.Stat(f, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			h.File, h.FileDev, h.FileIno = f, st.Dev, st.Ino
			break
		}
	}
	if h.File != "" {
		if fh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, h.File, 0); err == nil {
			h.HandleType, h.Handle = fh.Type(), fh.Bytes()
		}
	}
	h.Disks, _ = probe.HostDevices("/sys/dev/block") // none: only /dev/kmsg is tried
	var ns unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &ns); err != nil {
		return h, fmt.Errorf("stat /proc/self/ns/pid: %w", err)
	}
	h.PIDNS = ns.Ino
	if err := unix.Stat("/proc/self/ns/cgroup", &ns); err != nil {
		return h, fmt.Errorf("stat /proc/self/ns/cgroup: %w", err)
	}
	h.CgroupNS = ns.Ino
	mounts, err := procfs.GetMounts()
	if err != nil {
		return h, fmt.Errorf("read the host's mount table: %w", err)
	}
	h.Cgroup2Opts = cgroups.V2MountOptions(mounts)
	return h, nil
}

// probeLauncher is how the box runs stepbox, whose files its root does
// not hold: execveat(2) of a descriptor. A dynamic binary needs its ELF
// interpreter and libraries, which the box's root lacks too: the box then
// runs the host's interpreter by descriptor, which loads stepbox and its
// libraries from descriptors 3… (/proc/self/fd/N) as ld.so(8) allows.
// It returns the files it opened, for the caller to close.
func probeLauncher() (run *execFile, argv []string, opened []*os.File, err error) {
	exe, err := SelfExe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			closeAll(opened)
		}
	}()
	ef, err := elf.NewFile(exe)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the ELF header of stepbox: %w", err)
	}
	var interp string
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			data, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("read PT_INTERP of stepbox: %w", err)
			}
			interp = strings.TrimRight(string(data), "\x00")
		}
	}
	if interp == "" {
		return &execFile{Name: "stepbox", Exe: exe}, []string{"stepbox", entryProbe}, nil, nil
	}
	needed, err := ef.ImportedLibraries()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read DT_NEEDED of stepbox: %w", err)
	}
	mapped, err := mappedLibraries()
	if err != nil {
		return nil, nil, nil, err
	}
	run = &execFile{Name: interp, Extra: []*os.File{exe}}
	var preload []string
	for _, lib := range needed {
		p, ok := mapped[lib]
		if !ok {
			return nil, nil, opened, fmt.Errorf("library %s of stepbox is not mapped in this process (/proc/self/maps)", lib)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, opened, err
		}
		opened = append(opened, f)
		preload = append(preload, fmt.Sprintf("/proc/self/fd/%d", 3+len(run.Extra)))
		run.Extra = append(run.Extra, f)
	}
	if run.Exe, err = os.Open(interp); err != nil {
		return nil, nil, opened, err
	}
	opened = append(opened, run.Exe)
	argv = []string{interp, "--argv0", "stepbox", "--inhibit-cache"}
	if len(preload) > 0 {
		argv = append(argv, "--preload", strings.Join(preload, " "))
	}
	return run, append(argv, "/proc/self/fd/3", entryProbe), opened, nil
}

// mappedLibraries maps the base name of each file this process maps to
// its path: the libraries the dynamic loader found for stepbox.
func mappedLibraries() (map[string]string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	libs := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 6 && strings.HasPrefix(fields[5], "/") {
			libs[filepath.Base(fields[5])] = fields[5]
		}
	}
	return libs, s.Err()
}

// parseProbeReport reads the probe's JSON strictly: one report, known
// fields, one result per asked probe in order, known states and ways,
// and evidence cut to printable text.
func parseProbeReport(data []byte, names []string) ([]ProbeResult, error) {
	if len(data) >= maxProbeOutput {
		return nil, fmt.Errorf("the probe wrote %d bytes or more, more than a report takes", maxProbeOutput)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rep probe.Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("the probe's report is not valid: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the probe's report is followed by more output")
	}
	want := askedInBox(names)
	if len(rep.Probes) != len(want) {
		return nil, fmt.Errorf("the probe answered %d probes, not the %d asked", len(rep.Probes), len(want))
	}
	out := make([]ProbeResult, len(rep.Probes))
	for i, r := range rep.Probes {
		if r.Name != want[i] || !probe.Valid(r) {
			return nil, fmt.Errorf("the probe's answer %d (%s) is not one a probe gives", i+1, printable(r.Name, 40))
		}
		r.Evidence = printable(r.Evidence, 240)
		out[i] = ProbeResult{Result: r}
		if r.State == probe.Open {
			out[i].Closes, _ = probe.Closes(r.Name, r.Via)
		}
	}
	return out, nil
}

// askedInBox are the in-box probes names asks for (all without names), in
// the order the probes run, and answer, in.
func askedInBox(names []string) []string {
	var want []string
	for _, n := range probe.Names() {
		if len(names) == 0 || slices.Contains(names, n) {
			want = append(want, n)
		}
	}
	return want
}

// printable keeps the printable characters of s (no escape sequences,
// no newlines), at most n runes.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}

// capped keeps the first maxProbeOutput bytes written to it and takes
// the rest without keeping it, so the writer never blocks.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxProbeOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// closesInOwnUserNS is what closes a hole found open in a box that has a
// user namespace of its own (every rootless box): "a user namespace"
// closes nothing there, since the hole is open in one (ut26 F16).
func closesInOwnUserNS(closes string) string {
	var kept []string
	for _, c := range strings.Split(closes, "; ") {
		if rest, ok := strings.CutPrefix(c, "a user namespace — "); ok {
			kept = append(kept, rest)
		} else if c != "a user namespace" && !strings.HasPrefix(c, "a user namespace (") {
			kept = append(kept, c)
		}
	}
	kept = append(kept, "(the box has a user namespace of its own already: that does not close it)")
	return strings.Join(kept, "; ")
}
