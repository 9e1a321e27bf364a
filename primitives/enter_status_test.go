package primitives

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// enter says how its command ended from the command's own wait status,
// never from the enter process's exit code: a command that exits with
// status 130 (a shell whose last command was Ctrl-C'd) exited, one that
// SIGINT killed was killed, and the signal the enter process passed on
// to it (the terminal's Ctrl-C, or the session's cancel) is named
// (ut26 F13).
func TestEnterTellsAnExitWithStatus130FromAKillBySIGINT(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("status", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	uts := []NamespaceType{mustType(t, "uts")}
	enter := func(ctx context.Context, argv ...string) ExitStatus {
		t.Helper()
		es, _, err := b.Enter(ctx, uts, argv, Stdio{Out: discard{}, Err: discard{}})
		if err != nil {
			t.Fatalf("enter -- %q: %v", argv, err)
		}
		return es
	}
	if es := enter(context.Background(), "sh", "-c", "exit 130"); es.Code != 130 || es.Signal != "" || es.PassedOn != "" {
		t.Errorf("a command that exits with status 130: %+v, want code 130 and no signal", es)
	}
	if es := enter(context.Background(), "sh", "-c", "kill -INT $$"); es.Code != 130 || es.Signal != "SIGINT" || es.PassedOn != "" {
		t.Errorf("a command that SIGINT kills (sent by the box, not passed on): %+v, want killed by SIGINT", es)
	}

	// Cancelled, the session sends SIGINT to the enter process, which
	// passes it on to the command.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !sleeping("1094"); time.Sleep(10 * time.Millisecond) {
		}
		cancel()
	}()
	if es := enter(ctx, "sleep", "1094"); es.Code != 130 || es.Signal != "SIGINT" || es.PassedOn != "SIGINT" {
		t.Errorf("a command ended by the SIGINT the enter process passed on: %+v, want killed by SIGINT, passed on", es)
	}
}

// sleeping says whether a process runs `sleep arg`.
func sleeping(arg string) bool {
	all, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range all {
		if b, err := os.ReadFile(f); err == nil && string(b) == "sleep\x00"+arg+"\x00" {
			return true
		}
	}
	return false
}
