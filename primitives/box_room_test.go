package primitives

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// A session whose cgroup lets it few more tasks is refused a box, and
// the error names the pids.max that bounds it.
func TestNewBoxIsRefusedNamingThePidsLimitThatBoundsIt(t *testing.T) {
	needRoot(t)
	h, place := testPlace(t)
	var at string
	for _, d := range place.Dirs {
		if h.Version() == 1 && strings.Join(d.Controllers, ",") == "pids" ||
			h.Version() == 2 && strings.Contains(readString(filepath.Join(d.Path, "cgroup.subtree_control")), "pids") {
			at = d.Path
		}
	}
	if at == "" {
		t.Skip("no pids controller stepbox's place offers")
	}
	cg := filepath.Join(at, "sbtest-room-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	// A session finds the cgroup trees once, before the limit is set.
	s := newTestSession(t)
	if _, err := s.roomForNew(); err != nil || s.room == nil || len(s.room.trees) == 0 {
		t.Fatalf("the session found no cgroup trees to read its room in: %v", err)
	}
	child := startDecoy(t)
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
		for i := 0; i < 50 && unix.Rmdir(cg) == unix.EBUSY; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	os.WriteFile(filepath.Join(cg, "pids.max"), []byte("10"), 0o644)
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	room, err := roomFor(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	err = roomForBox("web", 0, room)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(cg, "pids.max")) || !strings.Contains(err.Error(), "9 more tasks") {
		t.Fatalf("a process with 9 tasks left under pids.max: %v", err)
	}
	// The limit set after the trees were found bounds the next `new`.
	fs, _ := procfs.NewDefaultFS()
	if room, err = roomIn(fs, child.Process.Pid, *s.room); err != nil {
		t.Fatal(err)
	}
	if err := roomForBox("web", 0, room); err == nil || !strings.Contains(err.Error(), filepath.Join(cg, "pids.max")) {
		t.Fatalf("in the trees the session found before pids.max was set, a process with 9 tasks left: %v", err)
	}
	// This host has room for a box, and a session has room for MaxBoxes.
	room, err = roomFor(os.Getpid())
	if err != nil || roomForBox("web", 0, room) != nil {
		t.Fatalf("the test's own process is refused a box: %v, %v (%+v)", err, roomForBox("web", 0, room), room)
	}
	if err := roomForBox("web", MaxBoxes, room); err == nil || !strings.Contains(err.Error(), "64 boxes") {
		t.Errorf("box %d of a session: %v", MaxBoxes+1, err)
	}
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// A state dir on a filesystem with little room left gets no new upper
// dir: the box would fill that filesystem for the host too. The small
// filesystem is a tmpfs in a mount namespace of a child's own, reached
// through /proc/PID/root.
func TestOverlayIsRefusedWhereTheUpperDirWouldFillTheFilesystem(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	child := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs -o size=64M tmpfs \"$0\" && exec sleep 60", dir)
	if err := child.Start(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	inChild := fmt.Sprintf("/proc/%d/root%s", child.Process.Pid, dir)
	var st unix.Statfs_t
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if unix.Statfs(inChild, &st) == nil && st.Type == unix.TMPFS_MAGIC && st.Blocks*uint64(st.Bsize) == 64<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child's tmpfs did not appear")
		}
	}
	err := roomForUpper(inChild, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "64 MB free") {
		t.Fatalf("an upper dir on a 64 MB filesystem shared with the host: %v", err)
	}
	if err := roomForUpper(t.TempDir(), t.TempDir()); err != nil && !strings.Contains(err.Error(), "MB free") {
		t.Fatal(err)
	}
}

// roomFor runs before every `new`: the reads of /proc and the cgroup tree
// it makes.
func BenchmarkRoomFor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := roomFor(os.Getpid()); err != nil {
			b.Fatal(err)
		}
	}
}
