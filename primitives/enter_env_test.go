package primitives

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// enterProcessOf finds, from the host, the running enter process of box
// name: named stepbox-enter (executor.c), carrying the box's marker.
func enterProcessOf(name string) (pid int, environ []string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) != "stepbox-enter" {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
		env := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if slices.Contains(env, envBox+"="+name) {
			return p, env
		}
	}
	return 0, nil
}

// The enter process starts on the host's side, loaded by the host's
// ld.so: read from the host while its command runs, its environment is
// stepbox's markers and nothing of the image's (ut27 F1: an image's
// LD_PRELOAD ran there as the host's root). The command, inside the box,
// gets the image's Env and the markers, as exec's commands do.
func TestEnterStartsItsHostSideProcessWithStepboxsOwnEnvironment(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("envy", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "mnt", "pid", "uts"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	image := []string{"FOO=from-the-image", "LD_PRELOAD=/no-such-preload.so", "GLIBC_TUNABLES=glibc.malloc.check=3"}
	b.SetProcessDefaults(ProcessDefaults{Image: "test/env:1", Env: image})
	in, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		// The command waits for a line: the enter process runs meanwhile.
		_, _, err := b.Enter(context.Background(), mustTypes(t, "mnt", "pid", "uts"), []string{"sh", "-c", `read line; echo "[$FOO]"`}, Stdio{In: in, Out: &out, Err: &out})
		done <- err
	}()
	var pid int
	var env []string
	for deadline := time.Now().Add(20 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pid, env = enterProcessOf(b.Name)
	}
	// The command's environment once it runs sh: its child is a fork of
	// the enter process (stepbox's environment) until its execve(2).
	var command []byte
	for deadline := time.Now().Add(20 * time.Second); pid != 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil || len(strings.Fields(string(kids))) != 1 {
			continue
		}
		kid := strings.Fields(string(kids))[0]
		if argv, err := os.ReadFile("/proc/" + kid + "/cmdline"); err == nil && bytes.HasPrefix(argv, []byte("sh\x00")) {
			command, _ = os.ReadFile("/proc/" + kid + "/environ")
			break
		}
	}
	feed.Write([]byte("go\n"))
	in.Close()
	if err := <-done; err != nil {
		t.Fatalf("enter: %v\n%s", err, out.String())
	}
	if pid == 0 {
		t.Fatal("no enter process of box envy was found while its command ran")
	}
	if want := []string{envSession + "=" + s.ID, envBox + "=" + b.Name, envPIDNS + "=" + ownPIDNS}; !slices.Equal(env, want) {
		t.Errorf("the enter process (PID %d, on the host's side) started with %q, want stepbox's markers alone %q", pid, env, want)
	}
	for _, e := range image {
		if !bytes.Contains(command, []byte(e+"\x00")) {
			t.Errorf("the entered command's environment lacks the image's %s: %q", e, command)
		}
	}
	if !bytes.Contains(command, []byte(envBox+"="+b.Name+"\x00")) {
		t.Errorf("the entered command's environment lacks the box's marker: %q", command)
	}
	if got := strings.TrimSpace(out.String()); got != "[from-the-image]" {
		t.Errorf("the entered command said %q, want [from-the-image]", got)
	}
}

// On the learner's terminal, `enter` runs its command as the image's User
// and with the image's Env, as it does without one (the FLAGS argument
// was once rewritten for the terminal without the User's ids).
func TestEnterOnATerminalRunsAsTheImagesUserWithItsEnv(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("envtty", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "mnt", "pid", "uts"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	b.SetProcessDefaults(ProcessDefaults{Image: "test/env:1", Env: []string{"FOO=from-the-image"}, User: "4242:4343", IDs: &IDs{UID: 4242, GID: 4343}})
	master, tty := learnerTerminal(t)
	term, err := OpenTerminal(tty)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, master); close(copied) }()
	es, _, err := b.Enter(context.Background(), mustTypes(t, "mnt", "pid", "uts"), []string{"sh", "-c", `echo "[$FOO $(id -u):$(id -g)]"`}, Stdio{Terminal: term})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter: %v, status %+v", err, es)
	}
	time.Sleep(200 * time.Millisecond)
	tty.Close()
	master.Close()
	<-copied
	if !strings.Contains(out.String(), "[from-the-image 4242:4343]") {
		t.Errorf("the entered command on a terminal should run as the image's User with its Env: %q", out.String())
	}
}
