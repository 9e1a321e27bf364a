package repl

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// statusField reads one field of /proc/PID/status, as the kernel writes it.
func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// panelRow returns the cells of the security panel's row name.
func panelRow(t *testing.T, out, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^│ ` + regexp.QuoteMeta(name) + ` +│(.*)│$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no row %s in\n%s", name, out)
	}
	row := []string{name}
	for _, c := range strings.Split(m[1], "│") {
		row = append(row, strings.TrimSpace(c))
	}
	return row
}

// The panel's PID 1 column is /proc/PID/status of the box's PID 1, read
// here apart (capsh decodes the sets, a tool nobody here wrote); the
// mounts and the devices cgroup are the box's; every line fits 80
// columns.
func TestSecurityPanelShowsWhatTheKernelSaysOfPIDOne(t *testing.T) {
	sh, out := liveShell(t)
	sh.Width = 80
	run(t, sh, out, "new web", "unshare uts ipc net pid mnt", "mount overlay base", "pivot_root", "mount dev", "mount sys", "cgroup new", "cgroup attach")
	out.Reset()
	run(t, sh, out, "security")
	panel := out.String()
	pid := sh.Current().InitPID()
	for _, l := range strings.Split(strings.TrimRight(panel, "\n"), "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("a line is %d wide: %q", n, l)
		}
	}
	for _, set := range []string{"CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"} {
		mask, err := strconv.ParseUint(statusField(t, pid, set), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		want := "none"
		if mask != 0 {
			decoded, err := exec.Command("capsh", "--decode="+fmt.Sprintf("%x", mask)).Output()
			if err != nil {
				t.Skipf("capsh --decode: %v", err)
			}
			n := strings.Count(string(decoded), "cap_")
			want = fmt.Sprintf("%d caps", n)
		}
		if got := panelRow(t, panel, set)[1]; strings.TrimSuffix(got, " *") != want {
			t.Errorf("%s of PID %d is %s (%s by capsh), the panel says %q", set, pid, statusField(t, pid, set), want, got)
		}
	}
	nnp := map[string]string{"0": "0 off", "1": "1 on"}[statusField(t, pid, "NoNewPrivs")]
	if got := panelRow(t, panel, "NoNewPrivs")[1]; strings.TrimRight(got, " *+") != nnp {
		t.Errorf("NoNewPrivs: panel %q, kernel %q", got, nnp)
	}
	if got, mode := panelRow(t, panel, "Seccomp")[1], statusField(t, pid, "Seccomp"); !strings.HasPrefix(got, mode+" ") {
		t.Errorf("Seccomp: panel %q, kernel %s", got, mode)
	}
	// A fresh box's cgroup lets it reach every device (v1: it inherits
	// "a *:* rwm"), and its /sys is read-only (`mount sys`).
	if got := panelRow(t, panel, "devices")[1]; got != "a *:* rwm *" && !strings.Contains(got, "not read yet") {
		t.Errorf("devices of a fresh box's cgroup: %q", got)
	}
	open := strings.Fields(strings.SplitN(strings.SplitN(panel, "open paths:", 2)[1], "device rules:", 2)[0])
	if !slices.Contains(open, "/proc/sys") || slices.Contains(open, "/sys") {
		t.Errorf("open paths: /proc/sys should be open and /sys read-only:\n%s", panel)
	}
	if got := panelRow(t, panel, "user ns")[1]; got != "host's" {
		t.Errorf("user ns of a box without one: %q", got)
	}
}

// The panel reads /proc/PID/status, mountinfo, a stat of each of Docker's
// paths and the devices cgroup on every `security`, and the lesson's
// checks read it after every command of lesson 9.
func BenchmarkSecurityPanel(b *testing.B) {
	rootForBench(b)
	ts := newTestShell(b, "")
	ts.do(b, "new web", "unshare uts ipc net pid mnt", "mount overlay base", "pivot_root", "mount dev", "mount sys", "cgroup new", "cgroup attach")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts.out.Reset()
		ts.do(b, "security")
	}
	b.StopTimer()
	if !strings.Contains(ts.out.String(), "Docker's default") {
		b.Fatalf("no panel:\n%s", ts.tail())
	}
}

// After the security steps the next command's column is what a command
// started next holds, as its own /proc/self/status says; PID 1 keeps
// what it had.
func TestSecurityPanelsNextCommandIsWhatTheNextCommandGets(t *testing.T) {
	sh, out := liveShell(t)
	sh.Width = 80
	run(t, sh, out, "new web", "unshare uts ipc net pid mnt", "mount overlay base", "pivot_root", "mount dev", "mount sys",
		"caps docker", "nnp", "seccomp docker")
	out.Reset()
	run(t, sh, out, "security")
	panel := out.String()
	out.Reset()
	run(t, sh, out, "exec grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status")
	status := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			status[k] = strings.TrimSpace(v)
		}
	}
	for _, set := range []string{"CapBnd", "CapEff"} {
		decoded, err := exec.Command("capsh", "--decode="+status[set]).Output()
		if err != nil {
			t.Skipf("capsh --decode: %v", err)
		}
		want := fmt.Sprintf("%d caps", strings.Count(string(decoded), "cap_"))
		if got := panelRow(t, panel, set)[2]; got != want {
			t.Errorf("%s of the next command: the panel says %q, the command has %s (%s)", set, got, status[set], want)
		}
	}
	if got := panelRow(t, panel, "NoNewPrivs")[2]; status["NoNewPrivs"] != "1" || got != "1 on +" {
		t.Errorf("NoNewPrivs: panel %q, the command %s", got, status["NoNewPrivs"])
	}
	if got, want := panelRow(t, panel, "Seccomp")[2], fmt.Sprintf("%s filter ×%s", status["Seccomp"], status["Seccomp_filters"]); got != want {
		t.Errorf("Seccomp: panel %q, the command %q", got, want)
	}
	if got := panelRow(t, panel, "CapEff")[1]; !strings.HasSuffix(got, " *") {
		t.Errorf("PID 1 was started before the steps and keeps every capability: %q", got)
	}
}
