package primitives

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// envAttack makes the test binary, started in a box, the attacker: it
// tries, read-only, to reach the processes whose host PIDs it names.
const envAttack = "STEPBOX_TEST_ATTACK"

// attack tries on each target what a box took the session's control
// socket with: ptrace (PTRACE_SEIZE, then detach at once), /proc/PID/mem,
// environ, exe and fd/3 (its socket to the session), and pidfd_getfd of
// that descriptor. A target is "PID:PROCPID": its PID in the attacker's PID
// namespace, for the syscalls, and its directory in the /proc the
// attacker has (the host's, until the box mounts its own). It prints one
// line per try, "NAME PID: ok" or the error.
func attack(targets string) int {
	runtime.LockOSThread() // ptrace(2) is per thread
	for _, tg := range strings.Split(targets, ",") {
		a, b, _ := strings.Cut(tg, ":")
		pid, err1 := strconv.Atoi(a)
		procPID, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			fmt.Println("bad target", tg)
			return 2
		}
		say := func(name string, err error) {
			if err == nil {
				fmt.Printf("%s %d: ok\n", name, pid)
			} else {
				fmt.Printf("%s %d: %v\n", name, pid, err)
			}
		}
		err := unix.PtraceSeize(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		say("ptrace", err)
		for _, f := range []string{"mem", "environ", "exe"} {
			fh, err := os.Open(fmt.Sprintf("/proc/%d/%s", procPID, f))
			if err == nil && f == "environ" {
				// The kernel may check at read(2) rather than open(2).
				_, err = fh.Read(make([]byte, 64))
			}
			if fh != nil {
				fh.Close()
			}
			say(f, err)
		}
		// Its socket, through the magic link (listing the directory
		// shows only numbers, and root may).
		fh, err := os.Open(fmt.Sprintf("/proc/%d/fd/3", procPID))
		if err == nil {
			fh.Close()
		}
		say("fd/3", err)
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			var fd int
			fd, err = unix.PidfdGetfd(pidfd, 3, 0)
			if err == nil {
				unix.Close(fd)
			}
			unix.Close(pidfd)
		}
		say("pidfd_getfd", err)
	}
	return 0
}

// attacker copies the test binary where a box's root, mapped to an
// unprivileged host uid by `unshare user`, may run it.
func attacker(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is mode 0700.
	dir, err := os.MkdirTemp("", "stepbox-attacker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, "attacker")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A box that has a user namespace of its own, or a command of it that
// lacks CAP_SYS_PTRACE, cannot reach its executor or its PID 1: no ptrace, no /proc/PID/mem, environ, fd or exe, no
// pidfd_getfd of their control socket (they are non-dumpable, as runc
// init is, and a --user box process unshares after its execve). Before,
// in a --user box every one of these tries succeeded; after `unshare
// user` the executor's setresuid(2) had already made it non-dumpable
// (commit_creds), which these cases keep checking.
func TestAnUnprivilegedBoxCannotReachItsExecutor(t *testing.T) {
	needRoot(t)
	path := attacker(t)
	for _, tc := range []struct {
		name  string
		user  bool // new --user
		types []string
	}{
		{"the box process after unshare user", false, []string{"user"}},
		{"PID 1 after unshare user", false, []string{"user", "pid"}},
		{"the box process of a --user box", true, nil},
		{"PID 1 of a --user box", true, []string{"pid"}},
		// No user namespace: the command drops CAP_SYS_PTRACE itself
		// (setpriv(1), from the host's files the box still sees). Its
		// uid is still the executor's: Linux 6.18 lets it read environ
		// (only PATH, HOME, TERM and stepbox's markers), not the rest.
		{"the box process, by a command without CAP_SYS_PTRACE", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(t)
			b, _, err := s.NewBox("hostile", tc.user)
			if err != nil {
				t.Fatal(err)
			}
			var types []NamespaceType
			for _, n := range tc.types {
				types = append(types, mustType(t, n))
			}
			if len(types) > 0 {
				if _, err := b.Unshare(types, UnshareOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// The target as the box's commands see it, and as the host does.
			target, host := b.PID(), b.PID()
			if b.InitPID() != 0 {
				target, host = 1, b.InitPID()
			}
			var out, errb bytes.Buffer
			env := []string{fmt.Sprintf("%s=%d:%d", envAttack, target, host)}
			argv := []string{path}
			if !tc.user && len(tc.types) == 0 {
				setpriv, err := exec.LookPath("setpriv")
				if err != nil {
					t.Skip("no setpriv(1) on this host")
				}
				argv = []string{setpriv, "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", path}
			}
			es, err := b.Exec(context.Background(), argv, env, Stdio{Out: &out, Err: &errb})
			if err != nil || es.Code != 0 {
				t.Fatalf("the attacker: %v, exit %d: %s", err, es.Code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 6 {
				t.Fatalf("the attacker printed:\n%s", out.String())
			}
			for _, line := range lines {
				if sameUID := !tc.user && len(tc.types) == 0; sameUID && strings.HasPrefix(line, "environ ") {
					continue
				}
				if !strings.HasSuffix(line, ": operation not permitted") && !strings.HasSuffix(line, ": permission denied") {
					t.Errorf("from inside the box: %s, want EPERM or EACCES", line)
				}
			}
			// The session, in the host's user namespace, still reads them.
			if _, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", host)); err != nil {
				t.Errorf("the session cannot read its box's /proc/%d/environ: %v", host, err)
			}
		})
	}
}

// envDumpable makes the test binary, started in a box, print
// prctl(PR_GET_DUMPABLE) of its own process.
const envDumpable = "STEPBOX_TEST_DUMPABLE"

// The commands a box starts are dumpable again (execve(2) resets it for
// a binary its user may read): only stepbox's own processes are
// shielded, the learner's commands stay open to the box's own tools
// (strace, gdb, /proc/PID/environ).
func TestTheBoxsCommandsAreDumpable(t *testing.T) {
	needRoot(t)
	path := attacker(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("d", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, types := range [][]string{nil, {"user", "pid"}} {
		for _, n := range types {
			if _, err := b.Unshare([]NamespaceType{mustType(t, n)}, UnshareOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		es, err := b.Exec(context.Background(), []string{path}, []string{envDumpable + "=1"}, Stdio{Out: &out, Err: &out})
		if err != nil || es.Code != 0 {
			t.Fatalf("exec: %v, exit %d: %s", err, es.Code, out.String())
		}
		if got := strings.TrimSpace(out.String()); got != "1" {
			t.Errorf("after unshare %v: a command's PR_GET_DUMPABLE is %q, want 1", types, got)
		}
	}
}

// A box process runs stepbox through a read-only overlayfs mounted
// nowhere (as root) or from a sealed memfd copy: its /proc/PID/exe is not
// the host's binary, and even the host's root cannot write to it (EROFS,
// or F_SEAL_WRITE).
func TestABoxProcessRunsFromASealedCopyOfStepbox(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("sealed", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{b.PID(), b.InitPID()} {
		exe := fmt.Sprintf("/proc/%d/exe", pid)
		fi, err := os.Stat(exe)
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(fi, self) {
			t.Errorf("%s is the host's binary", exe)
		}
		f, err := os.Open(exe)
		if err != nil {
			t.Fatal(err)
		}
		var fs unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
			t.Fatal(err)
		}
		seals, serr := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		f.Close()
		switch {
		case fs.Type == unix.OVERLAYFS_SUPER_MAGIC:
			// As root: the overlay, read-only and in no mount table.
			if fs.Flags&unix.ST_RDONLY == 0 {
				t.Errorf("%s: on a writable overlay (statfs flags %#x)", exe, fs.Flags)
			}
			real, _ := os.Readlink("/proc/self/exe")
			if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(mi), "lowerdir="+filepath.Dir(real)+":") {
				t.Errorf("the overlay of stepbox's directory is in the session's mount table (%v)", err)
			}
		case serr != nil || seals&selfExeSeals != selfExeSeals:
			t.Errorf("%s: neither on a read-only overlay (filesystem %#x) nor sealed (seals %#x, %v)", exe, fs.Type, seals, serr)
		}
		if w, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
			w.Close()
			t.Errorf("%s opened for writing by the host's root", exe)
		}
	}
	// Where this process can make the overlay, the boxes use it.
	if f, err := readOnlyOverlay("/proc/self/exe", t.TempDir()); err == nil {
		f.Close()
		if from, _ := selfExeFrom(); !strings.Contains(from, "overlayfs") {
			t.Errorf("the overlay can be made here, but box processes run %s", from)
		}
	}
}
