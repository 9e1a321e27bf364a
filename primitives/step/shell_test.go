package step

import (
	"os/exec"
	"strings"
	"testing"
)

// A joined command line, run by a real shell, gives back the same argv.
func TestShellJoinRoundTrips(t *testing.T) {
	argv := []string{"sh", "-c", "for i in $(seq 3); do echo $i; done", "it's", "", "a b", `back\slash`, "tab\there", "plain"}
	line := ShellJoin(argv)
	if !strings.HasPrefix(line, "sh -c 'for i") || !strings.HasSuffix(line, " plain") {
		t.Errorf("ShellJoin = %s: plain words should stay bare, the rest quoted", line)
	}
	// printf prints each argument after the first two on its own line.
	out, err := exec.Command("bash", "-c", "printf '%s\\n' "+ShellJoin(argv[1:])).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), strings.Join(argv[1:], "\n")+"\n"; got != want {
		t.Errorf("through bash:\n got %q\nwant %q", got, want)
	}
}
