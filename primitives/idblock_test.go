package primitives

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// As root, a `new --user` box's root is nobody on the host (ut27 F3):
// a root-owned file of the host's, mode 0644, that the box reaches
// through the host's root (no pivot_root yet) is not writable to it, by
// access(2) nor by open(O_WRONLY), and neither is a root-owned 0755 dir.
func TestNewUserBoxCannotWriteRootsFilesAsRoot(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o711)
	file := filepath.Join(dir, "roots-file")
	if err := os.WriteFile(file, []byte("host root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _, err := s.NewBox("g", true)
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`test -r %[1]s && echo readable; test -w %[1]s && echo WRITABLE; (: >> %[1]s) 2>/dev/null && echo OPENED; test -w %[2]s && echo DIR-WRITABLE; id -u`, file, dir)
	out := run(t, b, "sh", "-c", script)
	if strings.Contains(out, "WRITABLE") || strings.Contains(out, "OPENED") {
		t.Errorf("a --user box of a root session may write host root's files:\n%s", out)
	}
	if !strings.Contains(out, "readable") || !strings.HasSuffix(out, "0\n") {
		t.Errorf("the box should read the 0644 file and be uid 0 inside:\n%s", out)
	}
	if got, _ := os.ReadFile(file); string(got) != "host root's\n" {
		t.Errorf("the file changed: %q", got)
	}
}

// Boxes with user namespaces of their own, from `unshare user` (after
// `unshare pid`, so its PID 1 is mapped too) and from `new --user`, map
// disjoint blocks of host IDs, so none may signal another's processes:
// kill(2) checks host uids (ut27 F6).
func TestUserBoxesGetBlocksOfTheirOwnAndCannotSignalEachOther(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	a, _, err := s.NewBox("ua", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Unshare(mustTypes(t, "pid"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Unshare(mustTypes(t, "user"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	b, _, err := s.NewBox("ub", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "user"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _, err := s.NewBox("uc", true)
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string][]IDRange{}
	for _, x := range []*Box{a, b, c} {
		for _, f := range []string{"uid_map", "gid_map"} {
			m, err := readIDMap(fmt.Sprintf("/proc/%d/%s", x.CommandPID(), f))
			if err != nil || len(m) != 1 {
				t.Fatalf("box %s's %s: %v %v", x.Name, f, m, err)
			}
			r := IDRange{int(m[0].ContainerID), int(m[0].HostID), int(m[0].Size)}
			if r.Outside == 0 {
				t.Errorf("box %s maps its root to host ID 0 (%s %v)", x.Name, f, r)
			}
			maps[f] = append(maps[f], r)
		}
	}
	for f, m := range maps {
		if overlaps(m[:1], m[1]) || overlaps(m[:2], m[2]) {
			t.Errorf("the boxes' %s overlap: %v", f, m)
		}
	}
	target := a.CommandPID()
	var out bytes.Buffer
	es, err := b.Exec(context.Background(), []string{"sh", "-c", fmt.Sprintf("kill -0 %d", target)}, nil, Stdio{Out: &out, Err: &out})
	if err != nil {
		t.Fatal(err)
	}
	if es.Code == 0 || !strings.Contains(out.String(), "not permitted") {
		t.Errorf("kill -0 %d (box ua's PID 1) from box ub: exit %d, %q; want EPERM", target, es.Code, out.String())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", target)); err != nil {
		t.Errorf("box ua's PID 1 is gone: %v", err)
	}
}

// `unshare user` before `mount overlay` works as root: the session
// prepares the overlay dir for the box's mapped root (ut27 F7), whose
// files in it are its own. Its block is in the ledger, and freed at rm.
func TestUnshareUserThenMountOverlayWorks(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("d", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "user"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "mnt", "pid"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatalf("mount overlay after unshare user: %v", err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	run(t, b, "sh", "-c", "echo mine > /made")
	var st = b.ids
	fi, err := os.Stat(filepath.Join(b.FS().Upper, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != st.uid.Outside {
		t.Errorf("/made in the upper dir is host uid %d's, want the box's root, %d", uid, st.uid.Outside)
	}
	res, err := readLedger(filepath.Join(b.Dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range res {
		found = found || r.Kind == ResIDs && r.UID == st.uid.Outside && r.GID == st.gid.Outside && r.Count == idBlock
	}
	if !found {
		t.Errorf("the ledger has no line for the box's block %v: %+v", st.uid, res)
	}
	if err := s.Remove("d"); err != nil {
		t.Fatal(err)
	}
	// The block's claim is given back with the box, and its file goes.
	if _, err := os.Lstat(filepath.Join(idLockDir, lockName(st.uid.Outside))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the claim on host uids %v is still there after rm: %v", st.uid, err)
	}
	fd, holder, err := lockIDBlock(st.uid.Outside)
	if err != nil || fd < 0 {
		t.Fatalf("the claim on host uids %v is still held after rm (by PID %d): %v", st.uid, holder, err)
	}
	(&idBlockClaim{uid: st.uid, fd: fd}).release()
}

// A ledger's ID block is checked before teardown and the sweep rely on
// it: a line that is not one of root's blocks is refused, naming it; a
// block of the area that no live process maps passes without a word.
func TestLedgerIDBlockIsCheckedAgainstRootsArea(t *testing.T) {
	area, err := rootIDArea()
	if err != nil {
		t.Fatal(err)
	}
	n, size := area.blocks()
	last := IDRange{0, area.uid.Outside + (n-1)*size, size}
	for name, r := range map[string]Resource{
		"host root":     {Kind: ResIDs, UID: 0, GID: 0, Count: size},
		"off a block":   {Kind: ResIDs, UID: area.uid.Outside + 1, GID: area.gid.Outside + 1, Count: size},
		"past the area": {Kind: ResIDs, UID: area.uid.Outside + n*size, GID: area.gid.Outside + n*size, Count: size},
		"too large":     {Kind: ResIDs, UID: area.uid.Outside, GID: area.gid.Outside, Count: 2 * size},
	} {
		if _, err := ledgerIDs(r, "x"); err == nil || !strings.Contains(err.Error(), "refusing ID block") {
			t.Errorf("%s: %+v: %v, want it refused", name, r, err)
		}
	}
	used, err := mappedIDs()
	if err != nil {
		t.Fatal(err)
	}
	note, err := ledgerIDs(Resource{Kind: ResIDs, UID: last.Outside, GID: area.gid.Outside + (n-1)*size, Count: size}, "x")
	if err != nil || (note == "") == overlaps(used.uids, last) {
		t.Errorf("the area's last block: note %q, error %v", note, err)
	}
}

// envSquat makes the test binary bind the abstract unix socket names it
// lists (comma-separated, without the leading @), say "bound", and hold
// them until its stdin closes: run as another user, it is ut29's
// squatter (F4).
const envSquat = "STEPBOX_TEST_SQUAT"

func squat(names string) int {
	for _, name := range strings.Split(names, ",") {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrUnix{Name: "@" + name})
		}
		if err != nil {
			fmt.Printf("bind @%s: %v\n", name, err)
			return 1
		}
	}
	fmt.Println("bound")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// A local user who binds the abstract socket names root's sessions once
// claimed ID blocks with, `@stepbox-ids-START` (ut29 F4), takes no block
// from root: a claim is a lock in a directory only root writes. Claims
// still never share a block (two in one process conflict as two
// sessions' do), with every block taken the error says by what, and a
// release removes the files of the claims no one holds (a crashed
// session's). The area is two blocks of the test's own (the default
// area, made small), both squatted by uid 65534.
func TestOtherUsersSocketNamesTakeNoIDBlockOfRoots(t *testing.T) {
	needRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv(1) to start a process as another user")
	}
	if area, err := rootIDArea(); err != nil || area.uid != DefaultSubordinate {
		t.Skipf("root's blocks come from /etc/subuid here, not from stepbox's default area (%v): the test cannot give them an area of its own", err)
	}
	// Above the default area, below 2^31, and one of 500 areas, so that
	// runs of this test on one machine seldom share one.
	saved := DefaultSubordinate
	DefaultSubordinate = IDRange{Inside: 0, Outside: saved.Outside + saved.Count + os.Getpid()%500*2*idBlock, Count: 2 * idBlock}
	t.Cleanup(func() { DefaultSubordinate = saved })
	first, second := DefaultSubordinate.Outside, DefaultSubordinate.Outside+idBlock

	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", attacker(t))
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=stepbox-ids-%d,stepbox-ids-%d", envSquat, first, second))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "bound\n" {
		t.Fatalf("the squatter (uid 65534): %q", line)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("@stepbox-ids-%d", first)}); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("the squatter does not hold @stepbox-ids-%d: bind: %v", first, err)
	}
	unix.Close(fd)

	// A crashed session's claim, outside the area: its file, unlocked.
	stale := DefaultSubordinate.Outside + DefaultSubordinate.Count
	dir, err := openIDLockDir()
	if err != nil {
		t.Fatal(err)
	}
	fd, err = unix.Openat(dir, lockName(stale), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	unix.Close(dir)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	// Run after the session's close: nothing of the test's claims is left.
	t.Cleanup(func() {
		for _, at := range []int{first, second, stale} {
			if _, err := os.Lstat(filepath.Join(idLockDir, lockName(at))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the claim on host uids from %d is still there after the session closed: %v", at, err)
			}
		}
	})
	s := newTestSession(t)
	b, _, err := s.NewBox("x", true)
	if err != nil {
		t.Fatalf("new x --user with uid 65534 holding the names of every block: %v", err)
	}
	if got := b.ids.uid.Outside; got != first && got != second {
		t.Fatalf("box x's block starts at %d, outside the test's area", got)
	}
	other, err := claimIDBlock("y")
	if err != nil {
		t.Fatalf("a second claim, with box x holding one of two blocks: %v", err)
	}
	if other.uid.Outside == b.ids.uid.Outside {
		t.Errorf("two claims share host uids from %d", other.uid.Outside)
	}
	_, err = claimIDBlock("z")
	t.Logf("a third claim: %v", err)
	want := []string{"of its 2 blocks, 1 mapped by live user namespaces (the first by the user namespace of PID",
		"made by uid 0) and 1 claimed for boxes by root sessions (the first by this session)"}
	if err == nil || !strings.Contains(err.Error(), want[0]) || !strings.Contains(err.Error(), want[1]) {
		t.Errorf("a third claim: %v, want an error saying %q … %q", err, want[0], want[1])
	}
	other.release()
	for _, at := range []int{other.uid.Outside, stale} {
		if _, err := os.Lstat(filepath.Join(idLockDir, lockName(at))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a release left the file of the claim on host uids from %d (the released one, or the crashed session's): %v", at, err)
		}
	}
}

// A user namespace only a zombie is in maps no IDs: where PID 1 reaps no
// orphans (a container without an init), the PID 1 of a removed --user
// box stays a zombie, and its block must be free again for the next box.
// While the process runs its map counts; once it has exited, unreaped, it
// does not.
func TestAZombiesUserNamespaceHoldsNoIDBlock(t *testing.T) {
	needRoot(t)
	// Above the default area, below 2^31: no box of a session maps it.
	uid := DefaultSubordinate.Outside + DefaultSubordinate.Count + (500+os.Getpid()%500)*idBlock
	cmd := exec.Command("/bin/sh", "-c", "read x")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: idBlock}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: idBlock}},
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	block := IDRange{0, uid, idBlock}
	if used, err := mappedIDs(); err != nil || used.mapper(block, block) != cmd.Process.Pid {
		t.Fatalf("while PID %d runs in a user namespace mapping uids %d-%d, mappedIDs says %d maps them (%v)", cmd.Process.Pid, uid, uid+idBlock-1, used.mapper(block, block), err)
	}
	stdin.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := procState(cmd.Process.Pid); err != nil || st == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID %d did not exit in 10 s after its stdin closed", cmd.Process.Pid)
		}
	}
	if used, err := mappedIDs(); err != nil || used.mapper(block, block) != 0 {
		t.Errorf("PID %d, a zombie, still counts as mapping uids %d-%d (by PID %d, %v): its block would never be free again", cmd.Process.Pid, uid, uid+idBlock-1, used.mapper(block, block), err)
	}
}
