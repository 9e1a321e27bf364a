package primitives

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/procfs"
)

// A process may carry megabytes of arguments (ut25 F8: ten with 240 KB
// each made one `ps` take minutes): a snapshot reads a bounded prefix of
// its command line, marked as cut, whole characters only.
func TestProcessSnapshotReadsABoundedPrefixOfALongCommandLine(t *testing.T) {
	long := strings.Repeat("é", 60_000) // 120 KB, two bytes a character
	cmd := startedReading(t, "sh", long, long)
	p, err := procfs.NewProc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	n := ReadProcess(p, st)
	// A screen's width needs far less than two pages.
	if len(n.Cmdline) > 8192 {
		t.Errorf("the snapshot holds %d bytes of a 240 KB command line, want at most 8192", len(n.Cmdline))
	}
	if !strings.HasPrefix(n.Cmdline, "sh -c echo; read x sh éé") || !strings.HasSuffix(n.Cmdline, "é…") {
		t.Errorf("the snapshot's command line is %.40q…%q, want its start, whole characters, and a cut marked with …", n.Cmdline, n.Cmdline[max(0, len(n.Cmdline)-12):])
	}
	if !utf8.ValidString(n.Cmdline) {
		t.Errorf("the cut command line is not valid UTF-8: a character was split")
	}
	short := startedReading(t, "sh", "a", "b")
	p2, _ := procfs.NewProc(short.Process.Pid)
	st2, err := p2.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got := ReadProcess(p2, st2).Cmdline; got != "sh -c echo; read x sh a b" {
		t.Errorf("a short command line reads %q, want %q", got, "sh -c echo; read x sh a b")
	}
}

// startedReading starts `sh -c 'echo; read x' ARGS…` and returns once the
// shell has written its line: its exec is over. os/exec's Start returns
// when the exec has begun, and until the kernel has set up the new
// program's arguments /proc/PID/cmdline reads empty or the parent's (seen
// on the 6.1 VM).
func startedReading(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", "echo; read x"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("sh never said it started: %v", err)
	}
	return cmd
}
