package primitives

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pasteOf is size bytes of comment lines, as a learner pastes them.
func pasteOf(size int) []byte {
	var paste bytes.Buffer
	for i := 0; paste.Len() < size; i++ {
		fmt.Fprintf(&paste, "# pasted line %05d %s\n", i, strings.Repeat("x", 80))
	}
	return paste.Bytes()
}

// boxBehindARelay relays a learner's terminal (a pty the test owns) to
// a box terminal whose program is the host's sh running script. It
// returns the learner's side, the relay, the program's wait status when
// it ends, and what reached the learner's terminal so far.
func boxBehindARelay(t *testing.T, script string) (*os.File, *boxTerminal, chan error, func() string) {
	t.Helper()
	master, tty := learnerTerminal(t)
	learner, err := OpenTerminal(tty)
	if err != nil {
		t.Fatal(err)
	}
	bt, err := openBoxTerminal(learner)
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.relay(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var shown bytes.Buffer
	go func() {
		b := make([]byte, 32<<10)
		for {
			n, err := master.Read(b)
			mu.Lock()
			shown.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bt.slave, bt.slave, bt.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	bt.closeSlave()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return master, bt, waited, func() string { mu.Lock(); defer mu.Unlock(); return shown.String() }
}

// paste writes paste to the learner's terminal, as a terminal pastes,
// and fails unless the relay reads it all within 5 s.
func paste(t *testing.T, master *os.File, paste []byte) {
	t.Helper()
	pasted := make(chan error, 1)
	go func() { _, err := master.Write(paste); pasted <- err }()
	select {
	case err := <-pasted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the relay stopped reading the learner's keys: a box that does not read its terminal holds it up")
	}
}

// Behind a paste the box's program does not read (ut28 F3), however
// long, Ctrl-C is sent as SIGINT at once; past keysQueued, the learner
// is told that keys were dropped.
func TestRelaySendsCtrlCBehindKeysTheBoxDoesNotRead(t *testing.T) {
	master, bt, waited, shown := boxBehindARelay(t, "exec sleep 1095")
	paste(t, master, pasteOf(keysQueued+200<<10))
	if _, err := master.Write([]byte{0x03}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		var ws syscall.WaitStatus
		if ee, ok := err.(*exec.ExitError); ok {
			ws, _ = ee.Sys().(syscall.WaitStatus)
		}
		if !ws.Signaled() || ws.Signal() != unix.SIGINT {
			t.Errorf("sleep should end by SIGINT: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ctrl-C behind a paste never reached the box's program")
	}
	bt.close()
	if !strings.Contains(shown(), noteKeysDropped) {
		t.Errorf("the learner should be told keys were dropped (%q):\n%.300q", noteKeysDropped, shown())
	}
}

// Behind a paste the box's program does not read, the detach keys
// still detach.
func TestRelayDetachesBehindKeysTheBoxDoesNotRead(t *testing.T) {
	master, bt, _, _ := boxBehindARelay(t, "exec sleep 1095")
	paste(t, master, pasteOf(200<<10))
	if _, err := master.Write([]byte{detachFirst, detachSecond}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bt.Detached():
	case <-time.After(5 * time.Second):
		t.Fatal("the detach keys behind a paste never detached")
	}
	bt.close()
}

// A program that reads its terminal gets the whole of a paste far
// larger than the pty's input queue, as fast as it reads it: the relay
// holds what the pty does not take yet, it drops nothing.
func TestRelayGivesAReadingBoxAWholePaste(t *testing.T) {
	got := filepath.Join(t.TempDir(), "got")
	master, bt, waited, shown := boxBehindARelay(t, "exec cat >"+got)
	want := pasteOf(1 << 20)
	paste(t, master, want)
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := os.Stat(got); (st == nil || st.Size() < int64(len(want))) && time.Now().Before(deadline); st, _ = os.Stat(got) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := master.Write([]byte{0x04}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Error("cat never read the Ctrl-D after the paste")
	}
	bt.close()
	if b, _ := os.ReadFile(got); !bytes.Equal(b, want) {
		t.Errorf("cat read %d bytes of a %d-byte paste", len(b), len(want))
	}
	if strings.Contains(shown(), noteKeysDropped) {
		t.Errorf("nothing was dropped, yet the learner was told so")
	}
}
