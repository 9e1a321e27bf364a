package primitives

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func commOfPID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The box process and PID 1 are named for what they are in ps -e, top
// and stepbox's own messages, not "100" after the descriptor of the
// sealed copy they were executed from.
func TestBoxProcessAndPID1HaveNamesALearnerRecognises(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("named", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := commOfPID(t, b.PID()); got != "stepbox-box" {
		t.Errorf("the box process is called %q in /proc/%d/comm, want stepbox-box", got, b.PID())
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if b.CommandPID() == b.PID() {
		t.Fatal("unshare pid made no PID 1")
	}
	if got := commOfPID(t, b.CommandPID()); got != "stepbox-init" {
		t.Errorf("PID 1 is called %q in /proc/%d/comm, want stepbox-init", got, b.CommandPID())
	}
	// Their command lines, ps's COMMAND, say the same and name the box:
	// busybox ps shows "{comm} argv…" only where argv[0] is not the comm
	// (ut26 F11: "{100} stepbox __box cage").
	for pid, want := range map[int]string{b.PID(): "stepbox-box named", b.CommandPID(): "stepbox-init named"} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(strings.Fields(strings.ReplaceAll(string(raw), "\x00", " ")), " "); got != want {
			t.Errorf("/proc/%d/cmdline is %q, want %q", pid, raw, want)
		}
	}
}
