package repl

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPromptShowsTheBoxAndHowFarItHasCome(t *testing.T) {
	sh, out := liveShell(t)
	if got := sh.Prompt(); got != "stepbox ▸ " {
		t.Errorf("prompt without a box: %q", got)
	}
	for _, step := range []struct{ line, prompt string }{
		{"new web", "web[] ▸ "},
		{"unshare uts pid mnt", "web[uts,mnt,pid] ▸ "},
		{"mount overlay base", "web[uts,mnt,pid|overlay] ▸ "},
		{"pivot_root", "web[uts,mnt,pid|pivot] ▸ "},
		{"cgroup new", "web[uts,mnt,pid|pivot|cg] ▸ "},
		{"new db", "db[] ▸ "},
		{"unshare mnt", "db[mnt] ▸ "},
		{"mount overlay base", "db[mnt|overlay] ▸ "},
		{"chroot", "db[mnt|chroot] ▸ "},
		{"use web", "web[uts,mnt,pid|pivot|cg] ▸ "},
	} {
		run(t, sh, out, step.line)
		if got := sh.Prompt(); got != step.prompt {
			t.Errorf("after %s the prompt is %q, want %q", step.line, got, step.prompt)
		}
	}
}

func TestStatusShowsEveryPanelOfTheBox(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web")
	out.Reset()
	run(t, sh, out, "status")
	for _, want := range []string{
		"box web · id " + sh.Current().ID, "in every host namespace",
		"namespaces of box web", "no root filesystem yet: `mount overlay base`", "no cgroup yet: `cgroup new`",
		"process tree", "box process · web", "containerd-shim",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status of a new box lacks %q:\n%s", want, out)
		}
	}
	run(t, sh, out, "unshare uts mnt pid", "mount overlay base", "pivot_root", "cgroup new", "cgroup attach", "new db")
	run(t, sh, out, "use web")
	out.Reset()
	run(t, sh, out, "status")
	for _, want := range []string{
		"3 namespaces of its own", "its overlay as root (pivot_root)", "cgroup web-",
		"layer stack", "cgroups ·", "◀ box web", "PID 1 (init) · web", "1 *",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "box process · db") {
		t.Errorf("status of web shows box db's processes:\n%s", out)
	}
}

func TestSaveWritesTheStepsAsAScriptStepboxRunReplays(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "unshare uts", "hostname saved", "explain on", "explain off", "ns")
	if err := sh.Execute(context.Background(), "hostname 'bad name'"); err == nil {
		t.Fatal("a hostname with a space was taken")
	}
	run(t, sh, out, "exec hostname")
	out.Reset()
	run(t, sh, out, "history")
	want := []string{"new web", "unshare uts", "hostname saved", "exec hostname"}
	for i, l := range want {
		if !strings.Contains(out.String(), " "+string(rune('1'+i))+"  "+l+"\n") {
			t.Errorf("history lacks step %d %q:\n%s", i+1, l, out)
		}
	}
	if strings.Contains(out.String(), "bad name") || strings.Contains(out.String(), "explain") {
		t.Errorf("history holds a failed step or a command that is no step:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "web.sb")
	run(t, sh, out, "save "+file)
	script, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Split(strings.TrimSpace(string(script)), "\n")[1:], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("saved script:\n%s\nwant the steps:\n%s", script, strings.Join(want, "\n"))
	}
	replay, err := exec.Command(stepboxBinary(t), "--plain", "--state-dir", t.TempDir(), "run", file).CombinedOutput()
	if err != nil {
		t.Fatalf("stepbox run %s: %v\n%s", file, err, replay)
	}
	if !strings.Contains(string(replay), "\nsaved\n") {
		t.Errorf("the replay did not set the hostname again:\n%s", replay)
	}
}

func TestSourceRunsAFileHereAndStopsAtItsFirstFailure(t *testing.T) {
	sh, out := liveShell(t)
	file := filepath.Join(t.TempDir(), "steps.sb")
	if err := os.WriteFile(file, []byte("new web\n# a comment\nunshare uts\n-hostname 'not valid'\nhostname sourced\nexec false\nhostname never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := sh.Execute(context.Background(), "source "+file)
	if err == nil || !strings.Contains(err.Error(), "steps.sb:6") {
		t.Fatalf("source stopped with %v, want a stop at line 6 (exec false)", err)
	}
	if b := sh.Current(); b == nil || b.Hostname() != "sourced" {
		t.Errorf("the sourced steps did not apply to this session's box:\n%s", out)
	}
}
