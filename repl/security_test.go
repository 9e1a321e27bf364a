package repl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// statusLines runs `exec grep … /proc/self/status` in the current box
// and returns the lines the kernel wrote for that command.
func statusLines(t *testing.T, sh *Shell, out *bytes.Buffer) map[string]string {
	t.Helper()
	out.Reset()
	run(t, sh, out, "exec grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status")
	m := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// Docker's defaults, one step at a time, each seen in the status of the
// next command of a box with its own root.
func TestSecurityStepsReachTheNextCommandsStatus(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "unshare mnt pid uts", "mount overlay base", "pivot_root", "mount proc")
	st := statusLines(t, sh, out)
	if st["NoNewPrivs"] != "0" || st["Seccomp"] != "0" || st["CapEff"] == "00000000a80425fb" {
		t.Fatalf("before the steps: %v", st)
	}
	run(t, sh, out, "caps docker")
	if st := statusLines(t, sh, out); st["CapEff"] != "00000000a80425fb" || st["CapBnd"] != "00000000a80425fb" || st["NoNewPrivs"] != "0" {
		t.Errorf("after caps docker: %v, want Docker's 14 (a80425fb)", st)
	}
	run(t, sh, out, "nnp", "seccomp docker")
	if st := statusLines(t, sh, out); st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || st["Seccomp_filters"] != "1" {
		t.Errorf("after nnp and seccomp docker: %v", st)
	}
	out.Reset()
	run(t, sh, out, "caps show")
	if !strings.Contains(out.String(), "CapEff 00000000a80425fb  14") || !strings.Contains(out.String(), "box's PID 1") {
		t.Errorf("caps show:\n%s", out)
	}
	out.Reset()
	run(t, sh, out, "seccomp show")
	if !strings.Contains(out.String(), "BPF instructions") || !strings.Contains(out.String(), "SCMP_ACT_ERRNO (errno 38): clone3") {
		t.Errorf("seccomp show:\n%s", out)
	}
	run(t, sh, out, "seccomp deny mkdir mkdirat")
	msg := errorOf(t, sh, out, "exec mkdir /x")
	if !strings.Contains(msg, "Operation not permitted") {
		t.Errorf("exec mkdir /x under `seccomp deny mkdir mkdirat`:\n%s", msg)
	}
	saved := filepath.Join(t.TempDir(), "saved.sb")
	run(t, sh, out, "save "+saved)
	if b, err := os.ReadFile(saved); err != nil || !strings.Contains(string(b), "\ncaps docker\n") || !strings.Contains(string(b), "\nnnp\nseccomp docker\n") {
		t.Errorf("save does not record the security steps: %v\n%s", err, b)
	}
	run(t, sh, out, "seccomp off", "nnp off", "caps drop kill")
	st = statusLines(t, sh, out)
	if st["Seccomp"] != "0" || st["NoNewPrivs"] != "0" || st["CapEff"] != "00000000a80425db" {
		t.Errorf("after seccomp off, nnp off, caps drop kill: %v, want CapEff a80425db", st)
	}
}

func TestExplainShowsTheSecuritySyscalls(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "unshare uts")
	for line, want := range map[string]string{
		"explain caps docker":         "capset({_LINUX_CAPABILITY_VERSION_3",
		"explain caps drop net_raw":   "prctl(PR_CAPBSET_DROP, CAP_NET_RAW",
		"explain nnp":                 "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)",
		"explain seccomp deny ptrace": "seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=",
		"explain enter -- true":       "with the box's capabilities",
	} {
		out.Reset()
		run(t, sh, out, line)
		if !strings.Contains(unfolded(out.String()), want) { // the summary folds at the width
			t.Errorf("%s lacks %q:\n%s", line, want, out)
		}
	}
	out.Reset()
	run(t, sh, out, "caps drop kill", "explain exec true")
	if !strings.Contains(out.String(), "prctl(PR_CAPBSET_DROP, CAP_KILL") {
		t.Errorf("explain exec after caps drop kill does not show the drop:\n%s", out)
	}
}

func TestBadSecurityInputIsExplainedAndChangesNothing(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web")
	before := sh.Current().Security()
	for line, want := range map[string]string{
		"caps drop sys_admn":  "did you mean CAP_SYS_ADMIN?",
		"caps keep":           "an empty set is refused",
		"caps show 999999999": "no running process 999999999",
		"caps show x":         "PID is a process ID",
		"seccomp deny mkdri":  "did you mean mkdir?",
		"seccomp deny execve": "the filter blocks execve",
		"seccomp deny capset": "the filter blocks capset",
	} {
		msg := errorOf(t, sh, out, line)
		if !strings.Contains(msg, want) || !strings.Contains(msg, strings.Fields(line)[0]) {
			t.Errorf("%s: %s, want it to name the command and say %q", line, msg, want)
		}
	}
	after := sh.Current().Security()
	if after.Caps != before.Caps || after.CapsSet || after.NoNewPrivs || after.Seccomp.Source != "" {
		t.Errorf("bad input changed the box's settings: %+v", after)
	}
	// No PID 1 yet: `caps` shows the next command and the box process.
	out.Reset()
	run(t, sh, out, "caps")
	if !strings.Contains(out.String(), "no PID 1 yet") {
		t.Errorf("caps on a box without PID 1:\n%s", out)
	}
}

// The attack of issue 15: the box plants /bin/hostname; `enter --
// hostname` runs it with the box's capabilities, in its cgroup and user
// namespace, not with the host's.
func TestEnterRunsWhatTheBoxPlantedWithTheBoxsCaps(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "unshare mnt pid uts", "mount overlay base", "pivot_root", "mount proc",
		"cgroup new", "cgroup attach",
		`exec sh -c 'rm -f /bin/hostname; printf "#!/bin/sh\ngrep CapEff /proc/self/status\ncat /proc/self/cgroup\n" >/bin/hostname; chmod 755 /bin/hostname'`,
		"unshare user", "caps docker")
	out.Reset()
	if err := sh.Execute(context.Background(), "enter -- hostname"); err != nil {
		t.Fatalf("enter -- hostname: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "CapEff:\t00000000a80425fb") {
		t.Errorf("the planted hostname ran with other capabilities than the box's:\n%s", out)
	}
	g := sh.Current().Cgroup()
	if !strings.Contains(out.String(), g.Dirs[0].Cgroup) {
		t.Errorf("the planted hostname ran outside the box's cgroup %s:\n%s", g.Dirs[0].Cgroup, out)
	}
}
