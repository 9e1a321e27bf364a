package repl

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// The man page documents every command of the shell's table (each
// sub-command too), every subcommand of the command line and every flag.
func TestManPageNamesEveryCommandOfTheTable(t *testing.T) {
	page := manPage()
	if !strings.HasPrefix(page, ".TH STEPBOX 1 ") {
		t.Fatalf("no .TH header:\n%.200s", page)
	}
	n := 0
	walkCommands(func(c *Command) {
		n++
		if !strings.Contains(page, "\n.B "+roff(c.Usage)+"\n") {
			t.Errorf("the man page has no entry for %q (usage %q)", c.path(), c.Usage)
		}
	})
	if n < 40 {
		t.Fatalf("the command table holds %d commands: it was not filled", n)
	}
	for _, c := range cliCommands {
		if !strings.Contains(page, ".TP\n.B "+roff(c.line())+"\n") {
			t.Errorf("the man page has no entry for %q", c.line())
		}
	}
	for _, f := range allCLIFlags() {
		if !strings.Contains(page, "\n.B "+roff(flagForm(f))+"\n") {
			t.Errorf("the man page does not document %s", flagForm(f))
		}
	}
	for _, line := range strings.Split(page, "\n") {
		for _, r := range line {
			if r > 0x7f {
				t.Fatalf("a non-ASCII character troff would warn about: %q", line)
			}
		}
	}
}

// bashComplete loads the bash completion into a real bash and returns
// what it offers for the command line words (the last is being typed).
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("the bash completion test needs bash: %v", err)
	}
	f := filepath.Join(t.TempDir(), "stepbox.bash")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := `source "$1"; shift; COMP_WORDS=(stepbox "$@"); COMP_CWORD=$#; _stepbox; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command(bash, append([]string{"-c", prog, "_", f}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

// Run in a real bash, the completion offers every subcommand, each one's
// words and flags, and a flag's values.
func TestBashCompletionOffersEveryCommandOfTheTable(t *testing.T) {
	script, err := completionScript("bash")
	if err != nil {
		t.Fatal(err)
	}
	got := bashComplete(t, script, "")
	if want := cliNames(); !slices.Equal(got, want) {
		t.Errorf("stepbox <Tab> offers %q, want every subcommand %q", got, want)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"--state-dir", "/x", "le"}, []string{"lesson"}},
		{[]string{"lesson", ""}, append([]string{"list", "reset", "check"}, lessonNumbers()...)},
		{[]string{"demo", "--"}, []string{"--auto", "--no-pause", "--theme"}},
		{[]string{"--theme", ""}, []string{"default", "contrast"}},
		{[]string{"completion", ""}, completionShells},
	} {
		got := bashComplete(t, script, tc.words...)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("stepbox %s<Tab> offers %q: no %q", strings.Join(tc.words, " "), got, w)
			}
		}
	}
}

// The zsh and fish scripts name every subcommand and flag, and parse
// when the shell is installed.
func TestZshAndFishCompletionsNameEveryCommandOfTheTable(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		script, err := completionScript(shell)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cliCommands[1:] {
			want := " -a " + c.Name + " -d "
			if shell == "zsh" {
				want = " '" + c.Name + ":"
			}
			if !strings.Contains(script, want) {
				t.Errorf("the %s completion does not offer %s (no %q)", shell, c.Name, want)
			}
		}
		for _, f := range allCLIFlags() {
			if !strings.Contains(script, dashed(f)) && !strings.Contains(script, "-l "+f.Name) && !strings.Contains(script, "-s "+f.Name) {
				t.Errorf("the %s completion does not offer %s", shell, dashed(f))
			}
		}
		bin, err := exec.LookPath(shell)
		if err != nil {
			continue // neither is one of the packages the tests install
		}
		f := filepath.Join(t.TempDir(), "stepbox."+shell)
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
		if shell == "fish" {
			out, err := exec.Command(bin, "-c", `source $argv[1]; complete -C "stepbox "`, f).CombinedOutput()
			if err != nil {
				t.Fatalf("fish complete -C: %v\n%s", err, out)
			}
			for _, c := range cliNames() {
				if !strings.Contains("\n"+string(out), "\n"+c+"\t") {
					t.Errorf("fish completes stepbox <Tab> without %s:\n%s", c, out)
				}
			}
		}
	}
	if _, err := completionScript("tcsh"); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish") {
		t.Errorf("completion tcsh: %v, want an error naming the shells", err)
	}
}

// `stepbox version` names the commit: the Makefile's -ldflags value, or
// the one the Go toolchain recorded, with uncommitted changes said.
func TestVersionNamesTheCommit(t *testing.T) {
	const rev = "31bba76ed54490ddb352d478fd66089eabbfad72"
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(stamped), "stepbox devel, commit "+rev+", with uncommitted changes, go1.26.8"; got != want {
		t.Errorf("toolchain-stamped: %q, want %q", got, want)
	}
	if got := versionLine(&debug.BuildInfo{GoVersion: "go1.26.8"}); !strings.Contains(got, "commit unknown") {
		t.Errorf("no commit recorded: %q, want it to say the commit is unknown", got)
	}
	commit, modified, version = "0123456789abcdef0123456789abcdef01234567", "", "v1.2.0"
	defer func() { commit, modified, version = "", "", "" }()
	if got, want := versionLine(stamped), "stepbox v1.2.0, commit 0123456789abcdef0123456789abcdef01234567, go1.26.8"; got != want {
		t.Errorf("-ldflags: %q, want %q", got, want)
	}
}
