package repl

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"stepbox/lessons"
	"stepbox/primitives"
)

// A lecturer types the global flags after the subcommand as often as
// before it: `stepbox demo 2 --theme contrast`.
func TestGlobalFlagsWorkAfterTheSubcommand(t *testing.T) {
	for _, args := range []string{
		"demo 2 --theme contrast --plain --record x.cast --state-dir /tmp/s",
		"--theme contrast demo --plain 2 --record=x.cast --state-dir /tmp/s",
		"--state-dir /tmp/s --plain --theme contrast --record x.cast demo 2",
		"demo --no-pause 2 --theme=contrast --plain --auto 3 --record x.cast --state-dir=/tmp/s",
	} {
		g := &globalFlags{theme: "default"}
		fs := g.flagSet("stepbox")
		if err := fs.Parse(strings.Fields(args)); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		rest := fs.Args()
		if rest[0] != "demo" {
			t.Fatalf("%s: subcommand %q", args, rest[0])
		}
		l, _, err := parseDemoArgs(lessons.All(), g.flagSet("stepbox demo"), rest[1:])
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		want := globalFlags{stateDir: "/tmp/s", plain: true, theme: "contrast", record: "x.cast"}
		if l.Number != 2 || *g != want {
			t.Errorf("%s: lesson %d, flags %+v, want lesson 2, %+v", args, l.Number, *g, want)
		}
	}
}

func TestDoubleDashEndsTheFlags(t *testing.T) {
	g := &globalFlags{}
	words, err := parseFlags(g.flagSet("stepbox run"), []string{"--plain", "--", "--theme", "-"})
	if err != nil || strings.Join(words, " ") != "--theme -" || !g.plain || g.theme != "" {
		t.Errorf("words %q, flags %+v, %v", words, *g, err)
	}
}

func TestWrongFlagNamesItAndWhatIsAllowed(t *testing.T) {
	for args, want := range map[string][]string{
		"2 --them contrast": {"unknown flag --them", "did you mean --theme?", "stepbox demo takes", "--auto SECONDS", "--no-pause", "--record FILE", "--state-dir DIR", "--theme NAME"},
		"2 --nopause":       {"unknown flag --nopause", "did you mean --no-pause?"},
		"2 --record":        {"--record needs a value", "--record FILE"},
		"2 --theme neon":    {`invalid value "neon" for --theme: use default or contrast`},
		"2 --zzzzzz":        {"unknown flag --zzzzzz stepbox demo takes"}, // nothing near
	} {
		g := &globalFlags{}
		_, _, err := parseDemoArgs(lessons.All(), g.flagSet("stepbox demo"), strings.Fields(args))
		if err == nil {
			t.Errorf("demo %s: no error", args)
			continue
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if len([]rune(l)) > 78 {
				t.Errorf("demo %s: a line of the error is wider than the screen: %q", args, l)
			}
		}
		for _, w := range want {
			if msg := strings.ReplaceAll(err.Error(), "\n  ", " "); !strings.Contains(msg, w) {
				t.Errorf("demo %s: error %v, want %q in it", args, err, w)
			}
		}
	}
}

func TestRunAndLessonTakeFlagsAfterTheirArguments(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "s.stepbox")
	if err := os.WriteFile(script, []byte("new web\nunshare uts\nhostname flags-anywhere\nexec hostname\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cast := filepath.Join(dir, "run.cast")
	out, code := stepbox(t, "", "run", script, "--plain", "--state-dir", dir, "--record", cast)
	if code != 0 || !strings.Contains(out, "flags-anywhere\n") {
		t.Fatalf("run FILE --plain --state-dir DIR --record FILE: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(cast); err != nil || !strings.Contains(string(b), "flags-anywhere") {
		t.Errorf("--record after run FILE wrote no recording of the run: %v", err)
	}
	assertNoSessions(t, filepath.Join(dir, "run"))

	t.Setenv("XDG_STATE_HOME", t.TempDir())
	out, code = stepbox(t, "", "lesson", "list", "--plain")
	if code != 0 || !strings.Contains(out, "6  Putting it together") {
		t.Errorf("lesson list --plain: exit %d\n%s", code, out)
	}
	out, code = stepbox(t, "", "doctor", "--them", "contrast")
	if code != 2 || !strings.Contains(out, "stepbox doctor: unknown flag --them; did you mean --theme?") {
		t.Errorf("doctor --them: exit %d\n%s", code, out)
	}
	out, code = stepbox(t, "", "demo", "1", "--state-dir")
	if code != 2 || !strings.Contains(out, "--state-dir needs a value") {
		t.Errorf("demo 1 --state-dir: exit %d\n%s", code, out)
	}
}

func TestUnknownSubcommandSuggestsTheNearestOne(t *testing.T) {
	out, code := stepbox(t, "", "lessen", "2")
	if code != 2 || !strings.Contains(out, `unknown command "lessen"; did you mean lesson?`) {
		t.Errorf("stepbox lessen 2: exit %d\n%s", code, out)
	}
}

// TestWebTakesAnAddressOrNone: `--web` alone is loopback, `--web ADDR`
// and `--web=ADDR` name the address, and a flag after `--web` stays a flag.
func TestWebTakesAnAddressOrNone(t *testing.T) {
	for _, tc := range []struct {
		args []string
		web  string
		auto float64
	}{
		{[]string{"2", "--web", "--auto", "1"}, webDefaultAddr, 1},
		{[]string{"--web", "0.0.0.0:8080", "2"}, "0.0.0.0:8080", 0},
		{[]string{"2", "--web=127.0.0.1:9000"}, "127.0.0.1:9000", 0},
		{[]string{"2", "--web"}, webDefaultAddr, 0},
	} {
		g := &globalFlags{theme: "default"}
		fs := g.flagSet("stepbox demo")
		auto := fs.Float64("auto", 0, "")
		words, err := parseFlags(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if string(g.web) != tc.web || *auto != tc.auto || len(words) != 1 || words[0] != "2" {
			t.Errorf("%q: web %q auto %v words %q; want web %q auto %v words [2]", tc.args, g.web, *auto, words, tc.web, tc.auto)
		}
	}
	g := &globalFlags{}
	if _, err := parseFlags(g.flagSet("stepbox"), []string{"--web=nowhere"}); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("--web=nowhere: %v, want an error naming HOST:PORT", err)
	}
}

// ut22: --cgroup-parent took /stepbox-4524/.., the cgroup root behind a
// harmless-looking name; a relative path or any "." or ".." component is
// refused when the flag is read, naming the flag, the value and the rule.
func TestCgroupParentFlagRefusesDotComponents(t *testing.T) {
	for _, v := range []string{"/stepbox-4524/..", "/a/./b", "/..", "mine", "../mine", "//x", "/x/", "/x\x1bc", "/stepbox-4524-1", "/mine/stepbox-4524-1/b1"} {
		g := &globalFlags{}
		before := primitives.CgroupParentOverride
		_, err := parseFlags(g.flagSet("stepbox"), []string{"--cgroup-parent", v})
		if err == nil {
			t.Errorf("--cgroup-parent %q: taken", v)
			continue
		}
		msg := strings.ReplaceAll(err.Error(), "\n  ", " ")
		for _, w := range []string{"--cgroup-parent", strconv.Quote(v), "starting with / and without empty, . or .. components", "outside every stepbox session's cgroup"} {
			if !strings.Contains(msg, w) {
				t.Errorf("--cgroup-parent %q: error %q, want %q in it", v, msg, w)
			}
		}
		if primitives.CgroupParentOverride != before {
			t.Errorf("--cgroup-parent %q: set the override to %q", v, primitives.CgroupParentOverride)
		}
	}
	g := &globalFlags{}
	defer func(old string) { primitives.CgroupParentOverride = old }(primitives.CgroupParentOverride)
	if _, err := parseFlags(g.flagSet("stepbox"), []string{"--cgroup-parent", "/mine/box"}); err != nil || primitives.CgroupParentOverride != "/mine/box" {
		t.Errorf("--cgroup-parent /mine/box: %v, override %q", err, primitives.CgroupParentOverride)
	}
}
