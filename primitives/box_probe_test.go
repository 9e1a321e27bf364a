package primitives

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/hoststate"
	"stepbox/primitives/probe"
)

// lessonSixBox builds the box of lesson 6: five namespaces, the base
// image as its root, /proc, /dev and a read-only /sys, and a cgroup.
func lessonSixBox(t testing.TB, name string) (*Session, *Box) {
	t.Helper()
	s, stack := benchSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	var types []NamespaceType
	for _, n := range []string{"uts", "ipc", "net", "pid", "mnt"} {
		nt, err := LookupNamespace(n)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, nt)
	}
	steps := []func() error{
		func() error { _, err := b.Unshare(types, UnshareOptions{}); return err },
		func() error { _, err := b.MountOverlay(stack); return err },
		func() error { _, err := b.PivotRoot(); return err },
		func() error { _, err := b.Mount("dev", "", "/dev", false); return err },
		func() error { _, err := b.Mount("sys", "", "/sys", false); return err },
		func() error { _, err := b.CgroupNew(); return err },
		func() error { _, _, err := b.CgroupAttach(); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("lesson 6 step %d: %v", i+1, err)
		}
	}
	return s, b
}

// mustTypes are the namespace types of names.
func mustTypes(t *testing.T, names ...string) []NamespaceType {
	t.Helper()
	types := make([]NamespaceType, len(names))
	for i, n := range names {
		types[i] = mustType(t, n)
	}
	return types
}

func probeBox(t *testing.T, b *Box, names ...string) map[string]ProbeResult {
	t.Helper()
	rs, _, err := b.Probe(context.Background(), names)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ProbeResult{}
	for _, r := range rs {
		t.Logf("%-18s %-6s %-9s %s", r.Name, r.State, r.Via, r.Evidence)
		m[r.Name] = r
	}
	return m
}

// hostPermits reports whether the host itself, as root, gets past the
// kernel's own limits for a probe: a sandboxed machine may refuse every
// open of a disk, a kernel may load no modules. There the probe is
// closed in every box, and the test cannot ask it to be open.
func hostPermits(t *testing.T, name string) bool {
	switch name {
	case "disk":
		// Any block device, or /dev/kmsg, the host's root may open.
		h, err := probeHost()
		if err != nil {
			return false
		}
		for i, d := range append(h.Disks, probe.Device{Dev: unix.Mkdev(1, 11)}) {
			mode := uint32(unix.S_IFBLK)
			if i == len(h.Disks) {
				mode = unix.S_IFCHR
			}
			node := filepath.Join(t.TempDir(), "dev")
			if unix.Mknod(node, mode|0o600, int(d.Dev)) != nil {
				continue
			}
			if fd, err := unix.Open(node, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
				return true
			}
		}
		return false
	case "finit_module":
		return errors.Is(unix.FinitModule(-1, "", 0), unix.EBADF)
	case "release_agent":
		// release_agent is cgroup v1's: a pure v2 host has none to mount.
		data, _ := os.ReadFile("/proc/self/cgroup")
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[0] != "0" && f[1] != "" {
				return true
			}
		}
		return false
	case "ptrace":
		fd, err := unix.Open("/proc/1/mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err == nil
	}
	return true
}

// Every escape Docker's default container blocks is open on the box of
// lesson 6, where the kernel lets even the host through; /proc/1/root is
// closed by its PID namespace already, but its PID 1, stepbox's executor,
// can still be read and traced by the box's commands.
func TestProbesFindTheLessonSixBoxOpen(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "p6")
	got := probeBox(t, b)
	for _, name := range []string{"disk", "release_agent", "open_by_handle_at", "proc_sys", "remount", "finit_module", "dmesg", "kallsyms", "cgroup_escape"} {
		if !hostPermits(t, name) {
			t.Logf("%s: this host refuses it to its own root: not asserted", name)
			continue
		}
		if got[name].State != probe.Open {
			t.Errorf("probe %s on the lesson-6 box: %s (%s), want open", name, got[name].State, got[name].Evidence)
		} else if got[name].Closes == "" {
			t.Errorf("probe %s is open and names no step that closes it", name)
		}
	}
	for _, name := range []string{"proc_root", "sys"} {
		if got[name].State != probe.Closed {
			t.Errorf("probe %s on the lesson-6 box (own PID namespace, read-only /sys): %s (%s), want closed", name, got[name].State, got[name].Evidence)
		}
	}
	// PID 1 is the session's own child here: the host's refusal to trace
	// its own init (hostPermits "ptrace") does not apply.
	if r := got["ptrace"]; r.State != probe.Open || r.Via != "init" || !strings.Contains(r.Evidence, "stepbox's executor") || !strings.Contains(r.Closes, "caps docker") {
		t.Errorf("ptrace of the box's PID 1: %s via %s (%s), closed by %q; want open via init, naming stepbox's executor and caps docker", r.State, r.Via, r.Evidence, r.Closes)
	}
}

// /proc/1/root, ptrace of PID 1 and /sys are open on a box that shares
// the host's PID namespace and /sys, and close with the steps of lesson 6.
func TestProbesOfTheHostsPIDsAndSysAreOpenWithoutAPIDNamespace(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("shared", false)
	if err != nil {
		t.Fatal(err)
	}
	got := probeBox(t, b, "proc_root", "ptrace", "sys")
	for _, name := range []string{"proc_root", "ptrace", "sys"} {
		if !hostPermits(t, name) {
			t.Logf("%s: this host refuses it to its own root: not asserted", name)
			continue
		}
		if got[name].State != probe.Open {
			t.Errorf("probe %s on a box in the host's namespaces: %s (%s), want open", name, got[name].State, got[name].Evidence)
		}
	}
}

// `mount mask` closes /proc/sys; `cgroup devices docker` closes the
// devices a box may make and open; `unshare cgroup` hides release_agent
// and the parent cgroup.
func TestProbesCloseWithTheStepsThatCloseThem(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "close")
	if _, err := b.MountMask(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CgroupDevices("docker", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "cgroup")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	got := probeBox(t, b)
	for _, name := range []string{"proc_sys", "disk", "release_agent", "cgroup_escape"} {
		if got[name].State != probe.Closed {
			t.Errorf("probe %s after mount mask, cgroup devices docker and unshare cgroup: %s (%s), want closed", name, got[name].State, got[name].Evidence)
		}
	}
	if v := got["proc_sys"].Evidence; !strings.Contains(v, "read-only file system") {
		t.Errorf("proc_sys closed by %q, want EROFS from the read-only /proc/sys", v)
	}
}

// hostFingerprint is what the probes promise never to change: the
// mount table, hostname, cgroups and links (hoststate), the sysctls an
// escape would write, every file of /etc, and each v1 hierarchy's
// release_agent and notify_on_release.
func hostFingerprint(t *testing.T) string {
	t.Helper()
	st, err := hoststate.Capture()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n%s\n%v\n%v\n", st.Mounts, st.Hostname, st.Cgroups, st.Links)
	for _, f := range []string{"kernel/core_pattern", "kernel/modprobe", "kernel/hostname", "kernel/dmesg_restrict",
		"kernel/kptr_restrict", "kernel/printk", "vm/overcommit_memory", "net/ipv4/ip_forward"} {
		data, _ := os.ReadFile("/proc/sys/" + f)
		fmt.Fprintf(&b, "%s=%q\n", f, data)
	}
	filepath.WalkDir("/etc", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		fmt.Fprintf(&b, "%s %x\n", p, h.Sum(nil))
		return nil
	})
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent")
	slices.Sort(roots)
	for _, ra := range roots {
		agent, _ := os.ReadFile(ra)
		notify, _ := os.ReadFile(filepath.Join(filepath.Dir(ra), "notify_on_release"))
		fmt.Fprintf(&b, "%s %q %q\n", ra, agent, notify)
	}
	return b.String()
}

// The probes leave the host byte for byte as it was, and the box's own
// root without the device node the disk probe made.
func TestProbesLeaveTheHostByteIdentical(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "ident")
	before := hostFingerprint(t)
	probeBox(t, b)
	if after := hostFingerprint(t); after != before {
		bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
		for _, l := range al {
			if !slices.Contains(bl, l) {
				t.Errorf("after the probes the host has: %s", l)
			}
		}
		for _, l := range bl {
			if !slices.Contains(al, l) {
				t.Errorf("after the probes the host lost: %s", l)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(b.FS().Upper, ".stepbox-probe-*")); len(left) > 0 {
		t.Errorf("the disk probe left its node in the box: %v", left)
	}
}

// A name that is no probe is refused before anything runs, naming the
// known ones.
func TestProbeRefusesAnUnknownNameListingTheKnown(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("bad", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Probe(context.Background(), []string{"disk", "escape_hatch"})
	if err == nil || !strings.Contains(err.Error(), `"escape_hatch"`) || !strings.Contains(err.Error(), "release_agent") {
		t.Fatalf("probe escape_hatch: %v, want an error naming it and the known probes", err)
	}
}

// The session reads the probe's report strictly: the box controls that
// process and may write anything.
func TestProbeReportIsParsedStrictly(t *testing.T) {
	good := `{"probes":[{"name":"dmesg","state":"open","via":"syslog","evidence":"read 10 bytes\u001b[2J"}]}` + "\n"
	rs, err := parseProbeReport([]byte(good), []string{"dmesg"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(rs[0].Evidence, 0x1b) || rs[0].Closes == "" {
		t.Errorf("evidence %q, closes %q: want the escape cut and the closing step named", rs[0].Evidence, rs[0].Closes)
	}
	for _, bad := range []string{
		``, `{}` + "\n" + `{}`, `{"probes":[]}`,
		`{"probes":[{"name":"dmesg","state":"open","via":"syslog","evidence":"","extra":1}]}`,
		`{"probes":[{"name":"dmesg","state":"wide open","via":"syslog","evidence":""}]}`,
		`{"probes":[{"name":"dmesg","state":"open","via":"magic","evidence":""}]}`,
		`{"probes":[{"name":"disk","state":"open","via":"read","evidence":""}]}`,
		`{"probes":[{"name":"dmesg","state":"open","via":"syslog","evidence":""}]} trailing`,
	} {
		if _, err := parseProbeReport([]byte(bad), []string{"dmesg"}); err == nil {
			t.Errorf("parseProbeReport accepted %q", bad)
		}
	}
}

// A user namespace made first closes the holes that need a capability
// of the host's user namespace: root in the box is nobody outside.
func TestProbesCloseInAUserNamespace(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("userns", false)
	if err != nil {
		t.Fatal(err)
	}
	types := mustTypes(t, "user", "uts", "ipc", "net", "pid", "mnt")
	if _, err := b.Unshare(types, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	got := probeBox(t, b)
	for _, name := range []string{"disk", "release_agent", "open_by_handle_at", "proc_sys", "finit_module", "dmesg", "kallsyms", "ptrace"} {
		if got[name].State != probe.Closed {
			t.Errorf("probe %s in a user namespace: %s (%s), want closed", name, got[name].State, got[name].Evidence)
		}
	}
}

// A process the box started before its hardening keeps every
// capability, no no_new_privs, no seccomp filter and the host's user
// namespace: the probe names it, and does not count PID 1, stepbox's.
func TestProbeFindsAProcessStartedBeforeTheHardening(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "older")
	if r := probeBox(t, b, "older_processes")["older_processes"]; r.State != probe.Closed {
		t.Fatalf("older_processes before anything ran: %s (%s), want closed", r.State, r.Evidence)
	}
	if _, err := b.Exec(context.Background(), []string{"sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 &"}, nil, Stdio{}); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"caps docker", "nnp", "seccomp docker"} {
		if _, err := b.ApplySecurity(verb, nil); err != nil {
			t.Fatalf("%s: %v", verb, err)
		}
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "user")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	// Started after the hardening: it holds no more than the next command.
	if _, err := b.Exec(context.Background(), []string{"sh", "-c", "sleep 602 </dev/null >/dev/null 2>&1 &"}, nil, Stdio{}); err != nil {
		t.Fatal(err)
	}
	r := probeBox(t, b, "older_processes")["older_processes"]
	for _, want := range []string{"sleep 600", "CapEff 000001ff", "NoNewPrivs 0", "Seccomp 0", "user namespace", "PID 1 (host PID", "never gets the settings"} {
		if r.State != probe.Open || !strings.Contains(r.Evidence, want) {
			t.Errorf("older_processes after the hardening: %s (%s), want open naming %q", r.State, r.Evidence, want)
		}
	}
	if !strings.Contains(r.Closes, "kill") {
		t.Errorf("older_processes closed by %q, want it to say to end them", r.Closes)
	}
	// The shell's background child may not have run execve(2) yet: it
	// shows as the shell until it does.
	var names []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tree, err := b.session.ProcessTree()
		if err != nil {
			t.Fatal(err)
		}
		names = nil
		var walk func(n *ProcessNode)
		walk = func(n *ProcessNode) {
			names = append(names, n.Cmdline)
			for _, c := range n.Children {
				walk(c)
			}
		}
		walk(tree)
		if slices.Contains(names, "sleep 602") || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Contains(names, "sleep 602") {
		t.Errorf("the hardened sleep 602 is not running in the box: %q", names)
	}
	// The hardened command itself is no older process.
	if n := len(regexp.MustCompile(`\(host \d`).FindAllString(r.Evidence, -1)); n != 1 {
		t.Errorf("older_processes names %d processes, want sleep 600 alone (not the hardened sleep 602): %s", n, r.Evidence)
	}
}

// A cgroup namespace made before `cgroup attach` is rooted at the host's
// cgroup root: the probe reports it open even when nothing is writable.
// A second `unshare cgroup` after the attach roots a nested one at the
// box's cgroup; the cgroup mount made before still shows the host's tree
// until `mount cgroup` covers it; a third `unshare cgroup` is refused.
func TestProbeFindsACgroupNamespaceMadeBeforeTheAttach(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("cgns", false)
	if err != nil {
		t.Fatal(err)
	}
	types := mustTypes(t, "uts", "ipc", "net", "pid", "mnt", "cgroup")
	for i, step := range []func() error{
		func() error { _, err := b.Unshare(types, UnshareOptions{}); return err },
		func() error { _, err := b.MountOverlay(stack); return err },
		func() error { _, err := b.PivotRoot(); return err },
		func() error { _, err := b.Mount("dev", "", "/dev", false); return err },
		func() error { _, err := b.Mount("sys", "", "/sys", false); return err },
		func() error { _, err := b.Mount("cgroup", "", "/sys/fs/cgroup", false); return err },
		func() error { _, err := b.CgroupNew(); return err },
		func() error { _, _, err := b.CgroupAttach(); return err },
		func() error { _, err := b.ApplySecurity("caps docker", nil); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
	}
	want := func(when, state, via, closes string) {
		t.Helper()
		r := probeBox(t, b, "cgroup_escape")["cgroup_escape"]
		if r.State != state || via != "" && r.Via != via || !strings.Contains(r.Closes, closes) {
			t.Errorf("cgroup_escape %s: %s via %s (%s), closed by %q; want %s via %s, closed by %q", when, r.State, r.Via, r.Evidence, r.Closes, state, via, closes)
		}
	}
	want("with the cgroup namespace made before the attach", probe.Open, "nsroot", "`unshare cgroup` again, AFTER `cgroup attach`")
	if _, err := b.Unshare([]NamespaceType{mustType(t, "cgroup")}, UnshareOptions{}); err != nil {
		t.Fatalf("a second unshare cgroup, after the attach: %v", err)
	}
	want("after a second unshare cgroup", probe.Open, "mountroot", "`mount cgroup` again")
	if _, err := b.Mount("cgroup", "", "/sys/fs/cgroup", false); err != nil {
		t.Fatal(err)
	}
	want("after mount cgroup again", probe.Closed, "", "")
	if _, err := b.Unshare([]NamespaceType{mustType(t, "cgroup")}, UnshareOptions{}); err == nil || !strings.Contains(err.Error(), "rooted at its cgroup") {
		t.Errorf("a third unshare cgroup: %v, want it refused: the namespace is rooted at the box's cgroup already", err)
	}
}

// BenchmarkProbeAll times `probe` on the lesson-6 box: every probe, from
// the spawn of stepbox inside the box to the parsed report.
func BenchmarkProbeAll(b *testing.B) {
	rootForBench(b)
	_, box := lessonSixBox(b, "bench")
	for b.Loop() {
		if _, _, err := box.Probe(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// The box of lesson 6 plus every step Docker's default applies (a
// cgroup namespace, the cgroup filesystem read-only, masked paths,
// Docker's devices, capabilities, no_new_privs and seccomp profile):
// every probe is closed, and each step's own holes were open before it.
func TestProbesAllCloseOnADockerDefaultBox(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "docker")
	steps := []struct {
		name   string
		do     func() error
		closes []string // probes open before this step and closed after it
	}{
		{"unshare cgroup", func() error {
			_, err := b.Unshare([]NamespaceType{mustType(t, "cgroup")}, UnshareOptions{})
			return err
		}, []string{"release_agent", "cgroup_escape"}},
		{"mount cgroup", func() error { _, err := b.Mount("cgroup", "", "/sys/fs/cgroup", false); return err }, nil},
		{"mount mask", func() error { _, err := b.MountMask(); return err }, []string{"proc_sys"}},
		{"cgroup devices docker", func() error { _, err := b.CgroupDevices("docker", nil); return err }, []string{"disk"}},
		{"caps docker", func() error { _, err := b.ApplySecurity("caps docker", nil); return err },
			[]string{"open_by_handle_at", "remount", "dmesg", "kallsyms", "ptrace"}},
		{"nnp", func() error { _, err := b.ApplySecurity("nnp", nil); return err }, nil},
		{"seccomp docker", func() error { _, err := b.ApplySecurity("seccomp docker", nil); return err }, nil},
	}
	before := probeBox(t, b)
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := probeBox(t, b)
		for _, name := range s.closes {
			if name != "ptrace" && !hostPermits(t, name) { // ptrace: of the box's PID 1, the session's child
				continue
			}
			if before[name].State != probe.Open || after[name].State != probe.Closed {
				t.Errorf("%s: probe %s %s before and %s after (%s), want open then closed", s.name, name, before[name].State, after[name].State, after[name].Evidence)
			}
		}
		before = after
	}
	for name, r := range before {
		if r.State != probe.Closed {
			t.Errorf("on the Docker-default box, probe %s is %s: %s", name, r.State, r.Evidence)
		}
	}
}

// In a box with a user namespace of its own (every rootless box), no
// open hole is said to be closed by "a user namespace": it is open in
// one (ut26 F16); the other steps that close it stay named.
func TestProbeInAUserNamespaceNamesNoUserNamespaceAsItsCloser(t *testing.T) {
	for _, name := range probe.Names() {
		for _, via := range []string{"read", "kmsg", "pid1", "pid", "mount", "cap", "write", "remount", "load", "mem", "init", "inject"} {
			closes, ok := probe.Closes(name, via)
			if !ok || !strings.Contains(closes, "a user namespace") {
				continue
			}
			got := closesInOwnUserNS(closes)
			if strings.Contains(strings.ReplaceAll(got, "has a user namespace of its own", ""), "a user namespace") {
				t.Errorf("%s via %s in a user namespace: closed by %q", name, via, got)
			}
			if first, _, _ := strings.Cut(closes, ";"); !strings.HasPrefix(first, "a user namespace") && !strings.HasPrefix(got, first) {
				t.Errorf("%s via %s: %q lost %q", name, via, got, first)
			}
		}
	}
}

// A box that binds a FIFO over /proc/kallsyms (a host-root box with a
// mount namespace of its own, ut29 F10) no longer hangs `probe`: the
// probe looks at the path before it opens it, finds no file of the
// kernel's there, and says so, neither open nor closed. The old probe
// waited for ever for a writer; the test ends that wait itself.
func TestProbeOfAFIFOOverKallsymsAnswersAndSaysSo(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("fifo", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "mnt"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := execStatus(t, b, "mount", "--bind", fifo, "/proc/kallsyms"); code != 0 {
		t.Fatalf("mount --bind FIFO /proc/kallsyms in the box: %d %s", code, out)
	}
	type answer struct {
		rs  []ProbeResult
		err error
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		rs, _, err := b.Probe(context.Background(), []string{"kallsyms"})
		done <- answer{rs, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-time.After(30 * time.Second):
		// The old probe waits in open(2) for a writer: be one, so that
		// it ends and the session can close.
		if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
		a = <-done
		t.Fatalf("probe kallsyms with a FIFO over /proc/kallsyms still had not answered after 30s (then: %v)", a.err)
	}
	if a.err != nil {
		t.Fatalf("probe kallsyms: %v", a.err)
	}
	r := a.rs[0]
	t.Logf("answered in %s: %s %s %s", time.Since(start).Round(time.Millisecond), r.State, r.Via, r.Evidence)
	if r.State != probe.Unknown || !strings.Contains(r.Evidence, "/proc/kallsyms is a FIFO") || !strings.Contains(r.Evidence, "the box put it there") {
		t.Errorf("probe kallsyms with a FIFO over /proc/kallsyms: %s via %s (%s), want unknown, naming the FIFO the box put there", r.State, r.Via, r.Evidence)
	}
}

// A probe the box holds up (here it stops the process with SIGSTOP, as
// any box command may) is ended after probeTimeout: the session answers
// with an error that names the probe process and where it was, rather
// than wait for ever.
func TestProbeTheBoxHoldsUpIsEndedInBoundedTime(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "held")
	// Once the shell that starts it has exited, every process of the box
	// but PID 1 and the stopper is stopped, the probe among them as soon
	// as it starts.
	stopper := "sleep 1; while :; do kill -STOP -1; done"
	if _, err := b.Exec(context.Background(), []string{"sh", "-c", "(" + stopper + ") </dev/null >/dev/null 2>&1 &"}, nil, Stdio{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	// The box's lock is held while the probe runs: read it first.
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", b.CommandPID()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := b.Probe(context.Background(), []string{"kallsyms"})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(probeTimeout + 20*time.Second):
		// The old session waits for ever: end the stopper and continue
		// the probe, so that it ends and the session can close.
		for range 40 {
			pids, _ := filepath.Glob("/proc/[0-9]*")
			for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGCONT} {
				for _, p := range pids {
					cmd, _ := os.ReadFile(p + "/cmdline")
					if other, _ := os.Readlink(p + "/ns/pid"); other == ns && strings.Contains(string(cmd), "STOP") == (sig == unix.SIGKILL) {
						pid, _ := strconv.Atoi(filepath.Base(p))
						unix.Kill(pid, sig)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case err = <-done:
				t.Fatalf("probe held up by the box had not answered after %s (then: %v)", probeTimeout+20*time.Second, err)
			default:
			}
		}
		t.Fatalf("probe held up by the box had not answered after %s, nor once continued", probeTimeout+20*time.Second)
	}
	t.Logf("answered in %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "stepbox __probe in box held did not finish within "+probeTimeout.String()+" and was ended: it ") {
		t.Errorf("probe held up by the box: %v, want an error saying the probe did not finish in time and where it was", err)
	}
}

// Masks the box mounts itself while it keeps CAP_SYS_ADMIN close
// nothing, as it can unmount them the next moment (ut29 F5): `probe`
// does not call /proc/sys, /sys or /proc/kallsyms closed behind them, and
// `security` lists the paths open. Stepbox's own `mount mask` closes them;
// a mask of the box's own counts once the box cannot lift it (caps docker).
func TestMasksTheBoxMadeItselfCloseNothingWhileItCanLiftThem(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "selfmask")
	mask := "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && mount --bind /dev/null /proc/kallsyms && mount --bind /dev/null /proc/interrupts && mount -t tmpfs -o ro t /sys"
	if code, out := execStatus(t, b, "sh", "-c", mask); code != 0 {
		t.Fatalf("the box's own masks: %d %s", code, out)
	}
	masked := []string{"proc_sys", "sys", "kallsyms"}
	got := probeBox(t, b, masked...)
	for _, name := range masked {
		if r := got[name]; r.State != probe.Unknown || r.Via != probe.BoxMask || !strings.Contains(r.Evidence, "masked by the box itself, which can unmount it") {
			t.Errorf("probe %s behind the box's own mask: %s via %s (%s), want unknown, masked by the box itself", name, r.State, r.Via, r.Evidence)
		}
	}
	guarded := func() map[string]GuardedPath {
		sec, err := b.SecuritySnapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]GuardedPath{}
		for _, g := range append(sec.Masked, sec.ReadOnly...) {
			m[g.Path] = g
		}
		return m
	}
	for _, p := range []string{"/proc/sys", "/proc/interrupts"} {
		if g := guarded()[p]; g.Covered() || !g.ByBox {
			t.Errorf("security: %s behind the box's own mask: %+v, want it open, masked by the box itself", p, g)
		}
	}

	unmask := "umount /proc/sys && umount /proc/kallsyms && umount /proc/interrupts && umount /sys"
	if code, out := execStatus(t, b, "sh", "-c", unmask); code != 0 {
		t.Fatalf("the box lifts its masks: %d %s", code, out)
	}
	if _, err := b.MountMask(); err != nil {
		t.Fatal(err)
	}
	got = probeBox(t, b, masked...)
	for _, name := range []string{"proc_sys", "sys"} {
		if got[name].State != probe.Closed {
			t.Errorf("probe %s after stepbox's mount mask (and mount sys): %s (%s), want closed", name, got[name].State, got[name].Evidence)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/interrupts"} {
		if g := guarded()[p]; !g.Covered() || g.ByBox {
			t.Errorf("security: %s after stepbox's mount mask: %+v, want it covered", p, g)
		}
	}

	// A mask of the box's own counts once the box cannot lift it.
	if code, out := execStatus(t, b, "mount", "-t", "tmpfs", "-o", "ro", "t", "/sys"); code != 0 {
		t.Fatalf("mount tmpfs over /sys: %d %s", code, out)
	}
	if r := probeBox(t, b, "sys")["sys"]; r.State != probe.Unknown || r.Via != probe.BoxMask {
		t.Errorf("probe sys behind the box's own tmpfs: %s via %s (%s), want unknown, masked by the box itself", r.State, r.Via, r.Evidence)
	}
	if _, err := b.ApplySecurity("caps docker", nil); err != nil {
		t.Fatal(err)
	}
	if r := probeBox(t, b, "sys")["sys"]; r.State != probe.Closed {
		t.Errorf("probe sys behind the box's own tmpfs, after caps docker: %s via %s (%s), want closed: the box cannot unmount it", r.State, r.Via, r.Evidence)
	}
}

// A cgroup namespace made while the box is still in the session's cgroup
// of a hierarchy is rooted there, and where the session runs in the
// host's root cgroup (this machine's v1 hierarchies) that is the host's
// root: from inside, /proc/self/cgroup says / as for a namespace of the
// box's own, and the probe said closed, "the root of every hierarchy it
// can see" (ut35 G3). The session reads the box's cgroups from the host.
func TestProbeFindsACgroupNamespaceRootedAtTheHostsRoot(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("cgroot", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "uts", "ipc", "net", "pid", "mnt", "cgroup"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", b.CommandPID()))
	if err != nil {
		t.Fatal(err)
	}
	atRoot := regexp.MustCompile(`(?m):/$`).Match(cg)
	r := probeBox(t, b, "cgroup_escape")["cgroup_escape"]
	switch {
	case atRoot && (r.State != probe.Open || r.Via != "nsroot" || !strings.Contains(r.Evidence, "host's root cgroup")):
		t.Errorf("the box's cgroup namespace is rooted at the host's root cgroup (%q, read from the host), and cgroup_escape is %s via %s: %s", cg, r.State, r.Via, r.Evidence)
	case !atRoot && r.State == probe.Open && r.Via == "nsroot":
		t.Errorf("no hierarchy has the box at the host's root (%q), and cgroup_escape says so: %s", cg, r.Evidence)
	case !atRoot:
		t.Logf("no hierarchy has the box at the host's root here (%q): cgroup_escape %s via %s", cg, r.State, r.Via)
	}
}

// A box whose pids limit leaves the probe, a Go program, no room for its
// threads makes the runtime abort at its start: the error says why and
// what to do, not the runtime's crash text (ut35 G5).
func TestProbeUnderATightPidsLimitSaysWhy(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "tight")
	if _, _, err := b.CgroupLimit("pids", "5"); err != nil {
		t.Fatal(err)
	}
	_, _, err := b.Probe(context.Background(), []string{"cgroup_escape"})
	if err == nil {
		t.Skip("the probe ran under pids.max 5: this kernel and runtime needed fewer threads")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"pids.max 5", "`cgroup limit pids N`", "before `cgroup limit pids`"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %s", want, msg)
		}
	}
	for _, crash := range []string{"goroutine", "SIGABRT", "PC=", "stack="} {
		if strings.Contains(msg, crash) {
			t.Errorf("the error dumps the runtime's crash text (%q): %s", crash, msg)
		}
	}
}

// Both runtimes' words for a refused thread are found, cut to printable
// text; a probe that failed otherwise keeps its own error.
func TestProbeThreadRefusedIsFoundInTheRuntimesWords(t *testing.T) {
	for in, want := range map[string]string{
		"runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\nPC=0x1":      "runtime/cgo: pthread_create failed: Resource temporarily unavailable",
		"runtime: failed to create new OS thread (have 2 already; errno=11)\x1b[2J\nfatal error: newosproc": "runtime: failed to create new OS thread (have 2 already; errno=11)?[2J",
	} {
		if got, ok := threadRefused(in); !ok || got != want {
			t.Errorf("threadRefused(%q) = %q, %v; want %q, true", in, got, ok, want)
		}
	}
	if got, ok := threadRefused("stepbox __probe: open /proc/self/mountinfo: no such file"); ok {
		t.Errorf("threadRefused found %q in an unrelated error", got)
	}
}
