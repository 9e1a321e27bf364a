package viz

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"stepbox/primitives"
	"stepbox/primitives/step"
)

// Fixtures for the namespace, process, boxes, layers and step panels,
// taken from a real session (`new web`, `unshare uts ipc net mnt pid`,
// `exec sh`, a second box db) with its numbers.

func webNamespaces() primitives.NamespaceSnapshot {
	host := map[string]uint32{"cgroup": 4026531835, "ipc": 4026531839, "mnt": 4026531832, "net": 4026531833,
		"pid": 4026531836, "pid_for_children": 4026531836, "time": 4026531834, "time_for_children": 4026531834,
		"user": 4026531837, "uts": 4026531838}
	box := map[string]uint32{"ipc": 4026532280, "mnt": 4026532282, "net": 4026532283, "pid_for_children": 4026532284, "uts": 4026532279}
	init := map[string]uint32{"ipc": 4026532280, "mnt": 4026532282, "net": 4026532283, "pid": 4026532284, "pid_for_children": 4026532284, "uts": 4026532279}
	s := primitives.NamespaceSnapshot{Box: "web", HostPID: 4242, BoxPID: 4250, InitPID: 4251}
	for _, name := range primitives.NamespaceRows {
		r := primitives.NamespaceRow{Type: name, Host: host[name], Box: host[name], Init: host[name]}
		if v, ok := box[name]; ok {
			r.Box = v
		}
		if v, ok := init[name]; ok {
			r.Init = v
		}
		s.Rows = append(s.Rows, r)
	}
	return s
}

func webProcesses() *primitives.ProcessNode {
	sh := &primitives.ProcessNode{PID: 4260, PPID: 4251, NSpid: []int{4260, 2}, Comm: "sh", Cmdline: "sh", Box: "web"}
	sleep := &primitives.ProcessNode{PID: 4263, PPID: 4260, NSpid: []int{4263, 3}, Comm: "sleep", Cmdline: "sleep 300", Box: "web"}
	sh.Children = []*primitives.ProcessNode{sleep}
	init := &primitives.ProcessNode{PID: 4251, PPID: 4250, NSpid: []int{4251, 1}, Comm: "stepbox", Cmdline: "stepbox __box web init", Role: "PID 1", Box: "web", Children: []*primitives.ProcessNode{sh}}
	web := &primitives.ProcessNode{PID: 4250, PPID: 4242, NSpid: []int{4250}, Comm: "stepbox", Cmdline: "stepbox __box web", Role: "box process", Box: "web", Children: []*primitives.ProcessNode{init}}
	dbCmd := &primitives.ProcessNode{PID: 4312, PPID: 4311, NSpid: []int{4312}, Comm: "top", Cmdline: "top -b", Box: "db"}
	db := &primitives.ProcessNode{PID: 4311, PPID: 4242, NSpid: []int{4311}, Comm: "stepbox", Cmdline: "stepbox __box db", Role: "box process", Box: "db", Children: []*primitives.ProcessNode{dbCmd}}
	enter := &primitives.ProcessNode{PID: 4320, PPID: 4242, NSpid: []int{4320}, Comm: "stepbox", Cmdline: "stepbox __enter 4251 uts mnt -- hostname"}
	return &primitives.ProcessNode{PID: 4242, NSpid: []int{4242}, Comm: "stepbox", Cmdline: "stepbox", Role: "session", Children: []*primitives.ProcessNode{web, db, enter}}
}

func someBoxes() []BoxRow {
	at := time.Date(2025, 4, 9, 11, 20, 0, 0, time.UTC)
	return []BoxRow{
		{Current: true, Name: "web", ID: "0123456789ab", PID: 4250, InitPID: 4251, Namespaces: []string{"uts", "ipc", "net", "mnt", "pid"}, Root: "pivot", Cgroup: "web-0123456789ab", Hostname: "web1", Created: at, State: "running"},
		{Name: "db", ID: "89abcdef0123", PID: 4311, Namespaces: nil, Created: at, State: "exited"},
	}
}

func someLayers() []LayerRow {
	return []LayerRow{
		{Name: "base", Description: "busybox root filesystem (static busybox, /etc, /bin/sh)", Builtin: true, Path: "/var/lib/stepbox/layers/base/root"},
		{Name: "fileA", Description: "adds /fileA", Builtin: true, Locked: true, LockedBy: "web", Path: "/var/lib/stepbox/layers/fileA/root"},
		{Name: "app", Description: "my app", Path: "/var/lib/stepbox/layers/app/root"},
	}
}

// pivotRecord is the record of `pivot_root` in box web, as it ran.
func pivotRecord() *step.Step {
	merged := "/run/stepbox/sessions/4242-170593/boxes/web/overlay/merged"
	st := &step.Step{
		Command: "pivot_root",
		Summary: "the overlay at " + merged + " is now the box's /, and the host's root is detached from the box",
		Shell:   []string{"mount --make-rprivate /", "mount --rbind " + merged + " " + merged, "cd " + merged, "pivot_root . .", "umount -l .", "cd /"},
		Man:     []string{"pivot_root(2)", "mount(2)", "mount_namespaces(7)"},
		Undo:    "none while the box lives: the old root is gone from its mount namespace; `rm` ends the box and with it the namespace",
		Notes:   []string{"the host still reaches the box's files through /proc/PID/root"},
	}
	for _, c := range []string{
		`mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`, `mount("` + merged + `", "` + merged + `", NULL, MS_BIND|MS_REC, NULL)`,
		`chdir("` + merged + `")`, `pivot_root(".", ".")`, `umount2(".", MNT_DETACH)`, `chdir("/")`,
	} {
		st.Calls = append(st.Calls, step.Call{Syscall: c, Result: "0"})
	}
	return st
}

// failedRecord is `cgroup set pids.max abc`: the kernel refused the value.
func failedRecord() *step.Step {
	f := "/sys/fs/cgroup/pids/stepbox-4242/web-0123456789ab/pids.max"
	return &step.Step{
		Command: "cgroup set pids.max abc",
		Summary: `wrote "abc" to pids.max of web-0123456789ab`,
		Calls: []step.Call{
			{Syscall: `openat(AT_FDCWD, "` + f + `", O_WRONLY|O_TRUNC|O_CLOEXEC)`, Result: "5"},
			{Syscall: `write(5, "abc", 3)`, Result: "-1 EINVAL (Invalid argument)"},
			{Syscall: "close(5)", Result: "0"},
		},
		Shell: []string{"echo abc > " + f},
		Man:   []string{"cgroups(7)"},
		Undo:  "write the old value back, or remove the cgroup",
	}
}

// planRecord is `explain unshare uts pid`: a plan, nothing run.
func planRecord() *step.Step {
	st := &step.Step{
		Command: "unshare uts pid",
		Summary: "will move the box process into new namespaces: uts, pid",
		Shell:   []string{"unshare --uts sh   # a shell in a new uts namespace", "unshare --pid --fork --mount-proc sh   # --fork: only children enter the new PID namespace"},
		Man:     []string{"uts_namespaces(7)", "pid_namespaces(7)", "unshare(2)", "namespaces(7)"},
		Undo:    "a namespace is freed when its last process exits and nothing holds it open: `rm` ends the box's processes",
	}
	st.Plan("unshare(CLONE_NEWUTS)")
	st.Plan("unshare(CLONE_NEWPID)")
	st.Plan("clone(child_stack=NULL, flags=SIGCHLD)   # fork: the child is PID 1 in the new namespace")
	return st
}

// panels renders each of this file's panels for a width and theme.
var panels = map[string]func(width int, t Theme) string{
	"ns":          func(w int, t Theme) string { return NamespacePanel(webNamespaces(), w, t) },
	"ps":          func(w int, t Theme) string { return ProcessPanel(webProcesses(), w, t) },
	"boxes":       func(w int, t Theme) string { return BoxesPanel(someBoxes(), w, t) },
	"layers":      func(w int, t Theme) string { return LayersPanel(someLayers(), w, t) },
	"step":        func(w int, t Theme) string { return StepPanel(pivotRecord(), w, t) },
	"step_failed": func(w int, t Theme) string { return StepPanel(failedRecord(), w, t) },
	"step_plan":   func(w int, t Theme) string { return StepPanel(planRecord(), w, t) },
	"calls":       func(w int, t Theme) string { return CallsPanel(pivotRecord(), w, t) },
	"security":    func(w int, t Theme) string { return SecurityPanel(webSecurity(), w, t) },
}

func TestPanelsMatchGoldenFiles(t *testing.T) {
	for name, render := range panels {
		for _, width := range []int{80, 120} {
			for _, theme := range []string{"plain", "color"} {
				file := name + "_" + theme + "_" + strconv.Itoa(width) + ".golden"
				checkPanelGolden(t, file, render(width, NewTheme(theme)))
			}
		}
	}
}

func TestPanelsFitTheWidthAndPlainHasNoEscapes(t *testing.T) {
	for name, render := range panels {
		for _, width := range []int{80, 100, 120, 200} {
			for _, theme := range []string{"plain", "color", "contrast"} {
				out := render(width, NewTheme(theme))
				whole := map[string]bool{} // explain's shell lines are printed whole, to be copied
				if strings.HasPrefix(name, "step") {
					var rec *step.Step
					switch name {
					case "step":
						rec = pivotRecord()
					case "step_failed":
						rec = failedRecord()
					default:
						rec = planRecord()
					}
					for _, sh := range rec.Shell {
						whole[sh] = true
					}
				}
				for _, l := range strings.Split(out, "\n") {
					if whole[strings.TrimSpace(ansi.Strip(l))] {
						continue
					}
					if w := lipgloss.Width(l); w > width {
						t.Errorf("%s, %s at %d: a line is %d wide: %q", name, theme, width, w, l)
					}
				}
				if theme == "plain" && strings.Contains(out, "\x1b") {
					t.Errorf("%s, plain at %d: escape codes in %q", name, width, out)
				}
				if theme != "plain" && !strings.Contains(out, "\x1b") {
					t.Errorf("%s, %s at %d: no styling at all", name, theme, width)
				}
			}
		}
	}
}

func TestProcessPanelSetsTheDockerChainBesideEachProcess(t *testing.T) {
	out := ProcessPanel(webProcesses(), 120, NewTheme("plain"))
	for _, want := range []string{
		"dockerd → containerd → containerd-shim → sh",
		"stepbox session", "dockerd → containerd",
		"box process · web", "containerd-shim",
		"PID 1 (init) · web", "4251", "1 *", "sh, the container's PID 1",
		"sleep 300", "4263", "3 *", "a process in the container",
		"nsenter -t PID",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the process panel lacks %q:\n%s", want, out)
		}
	}
}

func TestNamespacePanelMarksWhatIsNotTheHosts(t *testing.T) {
	out := NamespacePanel(webNamespaces(), 120, NewTheme("plain"))
	for _, want := range []string{"4026532279 *", "its PID 1 · 4251", "host · 4242", "box web · 4250"} {
		if !strings.Contains(out, want) {
			t.Errorf("the namespace panel lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "4026531837 *") {
		t.Errorf("the host's user namespace is marked as the box's own:\n%s", out)
	}
}

func TestStepPanelSaysAPlanHasNotRun(t *testing.T) {
	plan := StepPanel(planRecord(), 120, NewTheme("plain"))
	if !strings.Contains(plan, "a plan: nothing has run") || !strings.Contains(plan, "unshare(CLONE_NEWUTS) = ?") {
		t.Errorf("the plan does not say it has not run:\n%s", plan)
	}
	ran := StepPanel(pivotRecord(), 120, NewTheme("plain"))
	if strings.Contains(ran, "plan") {
		t.Errorf("a record of a step that ran calls itself a plan:\n%s", ran)
	}
}

func TestContrastThemeDiffersFromDefault(t *testing.T) {
	a := NamespacePanel(webNamespaces(), 120, NewTheme("color"))
	b := NamespacePanel(webNamespaces(), 120, NewTheme("contrast"))
	if a == b {
		t.Error("the contrast theme renders like the default one")
	}
}

func BenchmarkPanels(b *testing.B) {
	th := NewTheme("color")
	for name, render := range panels {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				render(120, th)
			}
		})
	}
}
