package primitives

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestABoxIsNotGoneWhenTheSessionIsOutOfDescriptors: with every
// descriptor of the session taken (as 2000 idle browsers once took them),
// reading /proc/PID/stat fails with EMFILE. That says nothing about the
// box: Alive reports the session's shortage, not the box's death, and
// once descriptors are free again the box runs its next step.
func TestABoxIsNotGoneWhenTheSessionIsOutOfDescriptors(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("fdless", false)
	if err != nil {
		t.Fatal(err)
	}
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	// The lowest free descriptor becomes the limit: the next open fails.
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	low := was
	low.Cur = uint64(fd)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	alive := b.Alive()
	notice := s.Notice()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	var gone *BoxGoneError
	if errors.As(alive, &gone) || !errors.Is(alive, unix.EMFILE) {
		t.Errorf("Alive with no descriptor free: %v, want EMFILE and not the box gone", alive)
	}
	for _, err := range notice {
		if errors.As(err, &gone) {
			t.Errorf("Notice with no descriptor free: %v", err)
		}
	}
	if err := b.Alive(); err != nil {
		t.Fatalf("with descriptors free again: %v, want the box alive", err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Errorf("the next step: %v", err)
	}
}
