package viz

import (
	"fmt"
	"strings"
	"testing"

	"stepbox/primitives"
)

// webSecurity is the box of lesson 6 as the panel read it on this
// machine's kernel (Linux 6.18, hybrid cgroups): PID 1 with every
// capability but sys_resource, no seccomp, /sys read-only and nothing
// masked, the devices cgroup allowing all; and a next command under
// Docker's capabilities with no_new_privs and one filter.
func webSecurity() primitives.SecuritySnapshot {
	guard := func(paths []string, guarded map[string]string) []primitives.GuardedPath {
		var out []primitives.GuardedPath
		for _, p := range paths {
			out = append(out, primitives.GuardedPath{Path: p, Guard: guarded[p]})
		}
		return out
	}
	absent := map[string]string{"/proc/asound": "absent", "/proc/kcore": "absent", "/proc/latency_stats": "absent",
		"/proc/timer_stats": "absent", "/proc/sched_debug": "absent", "/proc/scsi": "absent", "/sys/devices/virtual/powercap": "absent"}
	return primitives.SecuritySnapshot{
		Box: "web", PID: 31917, IsInit: true,
		Proc:     primitives.ProcSecurity{PID: 31917, Comm: "stepbox", CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff},
		Next:     &primitives.ProcSecurity{CapPrm: 0xa80425fb, CapEff: 0xa80425fb, CapBnd: 0xa80425fb, NoNewPrivs: true, Seccomp: 2, SeccompFilters: 1},
		Masked:   guard(primitives.DockerDefault.Masked, absent),
		ReadOnly: guard(primitives.DockerDefault.ReadOnly, map[string]string{"/sys": "ro", "/sys/fs/cgroup": "ro", "/proc/sysrq-trigger": "ro"}),
		Devices:  primitives.DeviceList{Version: 1, Cgroup: "/sys/fs/cgroup/devices/stepbox-31907/web-5e239c8aecaf", Rules: []string{"a *:* rwm"}},
	}
}

// row returns the cells of the panel's table row named name.
func row(t *testing.T, panel, name string) []string {
	t.Helper()
	for _, l := range strings.Split(panel, "\n") {
		cells := strings.Split(l, "│")
		if len(cells) > 2 && strings.TrimSpace(cells[1]) == name {
			out := make([]string, 0, len(cells)-2)
			for _, c := range cells[1 : len(cells)-1] {
				out = append(out, strings.TrimSpace(c))
			}
			return out
		}
	}
	t.Fatalf("no row %q in\n%s", name, panel)
	return nil
}

func TestSecurityPanelSetsTheBoxBesideDockersDefault(t *testing.T) {
	out := SecurityPanel(webSecurity(), 80, NewTheme("plain"))
	for name, want := range map[string][]string{
		"CapEff":     {"CapEff", "40 caps *", "14 caps", "14 caps"},
		"CapInh":     {"CapInh", "none", "none", "none"},
		"NoNewPrivs": {"NoNewPrivs", "0 off", "1 on +", "0 off"},
		"Seccomp":    {"Seccomp", "0 off *", "2 filter ×1", "2 filter ×1, its profile"},
		"masked":     {"masked", "0 of 5, 7 absent *", "as PID 1 *", "all 12"},
		"read-only":  {"read-only", "3 of 7 *", "as PID 1 *", "all 7"},
		"devices":    {"devices", "a *:* rwm *", "as PID 1 *", fmt.Sprintf("%d rules", len(primitives.DockerDefault.Devices))},
		"user ns":    {"user ns", "host's", "as PID 1", "host's"},
	} {
		if got := row(t, out, name); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %s: %q, want %q\n%s", name, got, want, out)
		}
	}
	words := " " + strings.Join(strings.Fields(out), " ") + " "
	for _, want := range []string{" CAP_SYS_ADMIN ", " CAP_SYS_MODULE ", " /proc/sys ", " /proc/keys ", "device rules: a *:* rwm"} {
		if !strings.Contains(words, want) {
			t.Errorf("no %q under the table:\n%s", want, out)
		}
	}
	if strings.Contains(out, "beyond Docker's: CAP_MKNOD") || strings.Contains(out, "next command's CapEff beyond") {
		t.Errorf("Docker's own capabilities listed as beyond it:\n%s", out)
	}
}

// Docker's column is the fixed default whatever the box holds, and the
// next command's column says so when the box's settings cannot be read.
func TestSecurityPanelsDockerColumnIsDockersDefault(t *testing.T) {
	s := webSecurity()
	s.Next = nil
	s.Proc = primitives.ProcSecurity{CapEff: primitives.DockerDefault.Caps, CapPrm: primitives.DockerDefault.Caps, CapBnd: primitives.DockerDefault.Caps, Seccomp: 2, SeccompFilters: 1}
	out := SecurityPanel(s, 80, NewTheme("plain"))
	if got := row(t, out, "CapBnd"); got[1] != "14 caps" || got[2] != "not read yet" || got[3] != "14 caps" {
		t.Errorf("CapBnd: %q\n%s", got, out)
	}
	if got := row(t, out, "Seccomp"); got[1] != "2 filter ×1" || got[3] != "2 filter ×1, its profile" {
		t.Errorf("Seccomp: %q\n%s", got, out)
	}
	if strings.Contains(out, "CapEff beyond") {
		t.Errorf("a box with Docker's capabilities listed beyond them:\n%s", out)
	}
}

func TestSecurityPanelEscapesWhatTheBoxNamed(t *testing.T) {
	s := webSecurity()
	s.Box = "web\x1b]0;owned\x07"
	s.Devices.Rules = []string{"a *:* rwm\x1b[2J"}
	out := SecurityPanel(s, 80, NewTheme("plain"))
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("a control character reached the panel: %q", out)
	}
	if !strings.Contains(out, `web\x1b]0;owned\x07`) {
		t.Fatalf("the box's name is not shown escaped:\n%s", out)
	}
}

// The devices cell shows the box's one rule (or why the rules could not
// be read) escaped once, as the details under the table do: a rule
// holding the text \x1b is told from one holding an ESC.
func TestSecurityPanelsDevicesCellIsEscapedOnceAndApart(t *testing.T) {
	for v, want := range map[string]string{`n\x1bm`: `n\\x1bm`, "n\x1bm": `n\x1bm`} {
		s := webSecurity()
		s.Devices.Rules = []string{"c 1:3 rwm " + v}
		if got := row(t, SecurityPanel(s, 200, NewTheme("plain")), "devices")[1]; got != "c 1:3 rwm "+want+" *" {
			t.Errorf("devices rule %q is shown as %q, want %q", v, got, "c 1:3 rwm "+want+" *")
		}
	}
}

// A user namespace whose root is the host's uid 0 (root's `new --user`)
// is no stricter than Docker's default: kill(2) and file modes see the
// host's root. One mapped to a range of its own is.
func TestSecurityPanelCountsAUserNamespaceOfHostRootAsNone(t *testing.T) {
	s := webSecurity()
	s.UserNS = true
	s.UIDMap = []primitives.IDMapping{{Inside: 0, Outside: 0, Count: 1}}
	got := strings.Join(strings.Fields(SecurityPanel(s, 200, NewTheme("plain"))), " ")
	if !strings.Contains(got, "own, uid 0→0 ×1 (its root is the host's root to kill(2) and file modes) │") {
		t.Errorf("a map of root onto the host's root is not said so, or marked:\n%s", got)
	}
	s.UIDMap = []primitives.IDMapping{{Inside: 0, Outside: 1000000000, Count: 65536}}
	if r := row(t, SecurityPanel(s, 200, NewTheme("plain")), "user ns"); r[1] != "own, uid 0→1000000000 ×65536 +" {
		t.Errorf("a remapped root: %q", r)
	}
}

// A path masked by the box itself, which can unmount the mask, is
// neither counted nor left out of the open paths: the panel names it as
// the box's own (ut29 F5).
func TestSecurityPanelCountsTheBoxsOwnMaskAsOpen(t *testing.T) {
	s := webSecurity()
	for i := range s.ReadOnly {
		if s.ReadOnly[i].Path == "/proc/sysrq-trigger" {
			s.ReadOnly[i].ByBox = true
		}
	}
	out := SecurityPanel(s, 80, NewTheme("plain"))
	if got := row(t, out, "read-only"); got[1] != "2 of 7 *" {
		t.Errorf("read-only with the box's own mask over /proc/sysrq-trigger: %q, want 2 of 7\n%s", got[1], out)
	}
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"open paths: /proc/acpi", "masked by the box itself, which can unmount it: /proc/sysrq-trigger"} {
		if !strings.Contains(words, want) {
			t.Errorf("no %q under the table:\n%s", want, out)
		}
	}
	if open := words[strings.Index(words, "open paths:"):strings.Index(words, "masked by the box itself")]; !strings.Contains(open, "/proc/sysrq-trigger") {
		t.Errorf("the open paths leave out /proc/sysrq-trigger, masked by the box itself: %s", open)
	}
}
