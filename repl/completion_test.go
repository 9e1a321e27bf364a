package repl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	prompt "github.com/c-bata/go-prompt"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/viz"
)

// typed is what the completer offers for a line typed up to the cursor,
// through go-prompt's own Document.
func typed(sh *Shell, line string) []prompt.Suggest {
	b := prompt.NewBuffer()
	b.InsertText(line, false, true)
	return sh.completer(*b.Document())
}

func texts(s []prompt.Suggest) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Text)
	}
	return out
}

func suggestionTexts(s []Suggestion) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Text)
	}
	return out
}

// liveShell is an in-process session under temporary state dirs, driven
// through the command table; at cleanup it is torn down and the host
// checked to be as it was.
func liveShell(t *testing.T) (*Shell, *bytes.Buffer) {
	t.Helper()
	needRoot(t)
	hostUnchanged(t)
	s, err := primitives.OpenSession(primitives.Dirs{Run: searchableTempDir(t), Lib: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sh := NewShell(s, &out, &out, viz.NewTheme("plain"), 120)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return sh, &out
}

// run executes lines and stops the test at the first that fails.
func run(t *testing.T, sh *Shell, out *bytes.Buffer, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if err := sh.Execute(context.Background(), l); err != nil {
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
	}
}

func TestTabCompletesCommandsWithTheirSummaries(t *testing.T) {
	sh, _ := plainShell()
	got := typed(sh, "uns")
	if len(got) != 1 || got[0].Text != "unshare" || !strings.Contains(got[0].Description, "namespaces") {
		t.Fatalf("uns completes to %+v, want unshare with its summary", got)
	}
	if got := typed(sh, ""); got != nil {
		t.Errorf("an empty line offers a menu: %v", texts(got))
	}
	all := suggestionTexts(commandSuggestions(commands))
	for _, want := range []string{"new", "unshare", "mount", "pivot_root", "cgroup", "exec", "status", "explain", "save"} {
		if !slices.Contains(all, want) {
			t.Errorf("the table does not offer %s: %v", want, all)
		}
	}
	if got := typed(sh, "!ls "); got != nil {
		t.Errorf("a host command is completed: %v", texts(got))
	}
}

func TestTabCompletesSubCommandsFlagsAndLimitKinds(t *testing.T) {
	sh, _ := plainShell()
	for line, want := range map[string][]string{
		"cgroup ":                {"new", "set", "limit", "attach", "devices", "show"},
		"mount o":                {"overlay"},
		"mount ":                 {"overlay", "proc", "sys", "cgroup", "dev", "tmpfs", "bind", "mask"},
		"layer ":                 {"new", "put", "del", "rm"},
		"cgroup limit ":          {"memory", "pids", "cpu"},
		"cgroup limit p":         {"pids"},
		"new --":                 {"--user"},
		"stack ":                 {"--files"},
		"mounts --d":             {"--diff"},
		"help uns":               {"unshare"},
		"explain o":              {"on", "off"},
		"explain cgroup l":       {"limit"},
		"explain cgroup limit c": {"cpu"},
	} {
		if got := texts(typed(sh, line)); !slices.Equal(got, want) {
			t.Errorf("%q completes to %v, want %v", line, got, want)
		}
	}
	if got := typed(sh, "cgroup limit pids "); len(got) != 0 {
		t.Errorf("a limit's value is completed with %v", texts(got))
	}
}

func TestEverySuggestionCarriesADescription(t *testing.T) {
	sh, _ := plainShell()
	for _, line := range []string{"n", "cgroup ", "mount ", "layer ", "cgroup limit ", "new --", "explain ", "help "} {
		for _, s := range typed(sh, line) {
			if s.Description == "" {
				t.Errorf("%q: suggestion %q has no description", line, s.Text)
			}
		}
	}
}

func TestSaveAndSourceCompleteFilePaths(t *testing.T) {
	sh, _ := plainShell()
	dir := t.TempDir()
	for _, f := range []string{"web.sb", "webber.sb", "db.sb"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "lessons"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := typed(sh, "source "+dir+"/we")
	if want := []string{dir + "/web.sb", dir + "/webber.sb"}; !slices.Equal(texts(got), want) {
		t.Errorf("source completes to %v, want %v", texts(got), want)
	}
	got = typed(sh, "save "+dir+"/l")
	if len(got) != 1 || got[0].Text != dir+"/lessons/" || got[0].Description != "directory" {
		t.Errorf("save completes a directory to %+v", got)
	}
}

func TestUnshareOffersOnlyTypesNotUnsharedYet(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web")
	all := suggestionTexts(sh.Complete([]string{"unshare"}, ""))
	if want := []string{"user", "uts", "ipc", "net", "mnt", "cgroup", "time", "pid", "all"}; !slices.Equal(all, want) {
		t.Fatalf("unshare offers %v, want %v", all, want)
	}
	run(t, sh, out, "unshare uts pid")
	rest := suggestionTexts(sh.Complete([]string{"unshare"}, ""))
	if want := []string{"user", "ipc", "net", "mnt", "cgroup", "time", "all"}; !slices.Equal(rest, want) {
		t.Errorf("after unshare uts pid, unshare offers %v, want %v", rest, want)
	}
	if got := suggestionTexts(sh.Complete([]string{"unshare", "ipc"}, "")); slices.Contains(got, "ipc") {
		t.Errorf("a type already on the line is offered again: %v", got)
	}
	if got := suggestionTexts(sh.Complete([]string{"enter"}, "")); !slices.Equal(got, []string{"uts", "pid", "--"}) {
		t.Errorf("enter offers %v, want the box's own namespaces and --", got)
	}
}

func TestBoxAndLayerNamesComplete(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "new db", "layer new app 'my app'")
	if got := suggestionTexts(sh.Complete([]string{"use"}, "")); !slices.Equal(got, []string{"web", "db"}) {
		t.Errorf("use offers %v", got)
	}
	if got := suggestionTexts(sh.Complete([]string{"rm"}, "w")); !slices.Equal(got, []string{"web"}) {
		t.Errorf("rm w offers %v", got)
	}
	layers := suggestionTexts(sh.Complete([]string{"mount", "overlay"}, ""))
	for _, want := range []string{"base", "fileA", "app"} {
		if !slices.Contains(layers, want) {
			t.Errorf("mount overlay does not offer layer %s: %v", want, layers)
		}
	}
	if got := suggestionTexts(sh.Complete([]string{"mount", "overlay", "base"}, "")); slices.Contains(got, "base") {
		t.Errorf("a layer already in the stack is offered again: %v", got)
	}
	if got := sh.Complete([]string{"layer", "put"}, "ap"); len(got) != 1 || got[0].Text != "app" || got[0].Description != "my app" {
		t.Errorf("layer put ap offers %+v", got)
	}
}

func TestCgroupSetOffersTheWritableFilesOfTheHostsVersion(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "cgroup new")
	files := suggestionTexts(sh.Complete([]string{"cgroup", "set"}, ""))
	h, err := sh.Session.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	memory, cpu := "memory.max", "cpu.max"
	absent := []string{"pids.current", "memory.limit_in_bytes", "cpu.cfs_quota_us"}
	if h.Version() == 1 {
		memory, cpu = "memory.limit_in_bytes", "cpu.cfs_quota_us"
		absent = []string{"pids.current", "memory.max", "cpu.max"}
	}
	want := []string{"pids.max", "cgroup.procs"}
	for f, controller := range map[string]string{memory: cgroups.Memory, cpu: cgroups.CPU} {
		if slices.Contains(h.Controllers(), controller) {
			want = append(want, f)
		}
	}
	for _, f := range want {
		if !slices.Contains(files, f) {
			t.Errorf("cgroup set does not offer %s (cgroup v%d): %v", f, h.Version(), files)
		}
	}
	for _, s := range sh.Complete([]string{"cgroup", "set"}, "") {
		if s.Description == "" {
			t.Errorf("control file %s has no description", s.Text)
		}
	}
	for _, f := range absent {
		if slices.Contains(files, f) {
			t.Errorf("cgroup set offers %s, which this host's cgroup v%d has not, or is read-only", f, h.Version())
		}
	}
}

// A lesson's try block shows a command meant to fail with a leading '-'
// (`-exec ip route get 192.0.2.1`); typed as shown, it runs as the
// command instead of "unknown command".
func TestALineTypedWithTheLessonsDashRunsAsTheCommand(t *testing.T) {
	sh, out := liveShell(t)
	if err := sh.Execute(context.Background(), "-new a"); err != nil {
		t.Fatalf("-new a: %v\n%s", err, out)
	}
	if sh.Current() == nil || sh.Current().Name != "a" {
		t.Fatalf("`-new a` made no box a:\n%s", out)
	}
	err := sh.Execute(context.Background(), "-exec false")
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Errorf("`-exec false` should run exec and fail with its exit status, got %v\n%s", err, out)
	}
}
