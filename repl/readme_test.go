package repl

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's five-minute tour, typed as it stands, works: every line
// but the fork loop (which is meant to fail at pids.max) succeeds, and
// each shows what its comment promises.
func TestReadmeTourRuns(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Five minutes\n.*?```\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no code block under \"## Five minutes\"")
	}
	var script []string
	for _, line := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
		if strings.Contains(line, "# fork fails") {
			line = "-" + line // the script goes on past it, as the learner does
		}
		script = append(script, line)
	}
	out, code := runStepbox(t, t.TempDir(), strings.Join(script, "\n")+"\n", "--plain")
	if code != 0 {
		t.Fatalf("the tour stopped (exit %d):\n%s", code, out)
	}
	for _, want := range []string{
		"\nweb1\n",    // exec hostname, after hostname web1
		"\nlinuxrc\n", // exec ls /: busybox's tree
		"\ntest\n",    // !ls $BOX_ROOT shows the file the box made
		"+ /test",     // stack
		"can't fork",  // the fork loop meets pids.max
		"explain: cgroup limit memory 32M   (a plan: nothing has run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "error:"); n != 1 {
		t.Errorf("the tour printed %d errors, want only the fork loop's:\n%s", n, out)
	}
	if strings.Contains(out, "No such file or directory") {
		t.Errorf("a tour command missed a file (a /dev node?):\n%s", out)
	}
}
