package repl

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// holderEntry makes the test binary a box process that keeps something
// of the host in a way the session cannot all see (ut34 F1, F11):
// started in a box before pivot_root (whose root is the host's then),
// it keeps running after it. holderMain's first argument names the way.
const holderEntry = "__testholder"

func init() {
	// holderMain's capthr and secthr change the main thread (the thread
	// group leader, whose /proc/PID/status the old check read): keep the
	// main goroutine on it from the start.
	if len(os.Args) > 1 && os.Args[1] == holderEntry {
		runtime.LockOSThread()
	}
}

// holderMain keeps, with its cwd moved to "/" (which pivot_root moves):
//   - memsleep BUSYBOX: nothing at all, as a static busybox's sleep run
//     from a memfd (no host program mapped);
//   - mmap FILE: a shared writable mapping of FILE, its fd closed;
//   - inflight: an O_PATH fd of "/" queued on a socketpair, closed here;
//   - nsfd FILE: an open fd of the namespace FILE (/proc/1/ns/mnt);
//   - thrfd DIR: DIR open in a thread's own fd table (CLONE_FILES);
//   - thrroot DIR: a thread's own root on DIR (CLONE_FS, chroot);
//   - capthr: a second thread with every capability of the process's,
//     while the main thread drops them, its bounding set, and sets
//     no_new_privs;
//   - secthr: capthr's drop, and a seccomp filter allowing everything
//     in the main thread only.
//
// It never ends by itself: the box's end ends it.
func holderMain(args []string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", holderEntry, args[0], err)
		return 1
	}
	thread := func(f func() error) error {
		done := make(chan error)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread is the change's
			done <- f()
			for {
				time.Sleep(time.Hour)
			}
		}()
		return <-done
	}
	arg := ""
	if len(args) > 1 {
		arg = args[1]
	}
	// The runtime keeps its cgroup's CPU limit files open, which would
	// be named too: unused with GOMAXPROCS given and its updater off
	// (startHolder).
	for fd := 3; fd < 16; fd++ {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); strings.HasPrefix(l, "/sys/fs/cgroup/") {
			unix.Close(fd)
		}
	}
	// The runtime's poller, made now: made first in a thread of its own
	// fd table (thrfd), the other threads would not have its fd.
	time.Sleep(time.Millisecond)
	var err error
	switch args[0] {
	case "memsleep":
		// A static busybox run from a memfd: sleep maps no host file.
		var fd int
		var data []byte
		if data, err = os.ReadFile(arg); err == nil {
			if fd, err = unix.MemfdCreate("sleep", 0); err == nil {
				if _, err = unix.Write(fd, data); err == nil && unix.Chdir("/") == nil {
					err = unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"sleep", "300"}, nil)
				}
			}
		}
	case "mmap":
		var fd int
		if fd, err = unix.Open(arg, unix.O_RDWR, 0); err == nil {
			_, err = unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			unix.Close(fd)
		}
	case "inflight":
		var sp [2]int
		if sp, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
			var fd int
			if fd, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0); err == nil {
				err = unix.Sendmsg(sp[0], []byte("x"), unix.UnixRights(fd), nil, 0)
				unix.Close(fd)
				unix.Close(sp[0])
			}
		}
	case "nsfd":
		_, err = unix.Open(arg, unix.O_RDONLY, 0)
	case "thrfd":
		err = thread(func() error {
			if err := unix.Unshare(unix.CLONE_FILES); err != nil {
				return err
			}
			_, err := unix.Open(arg, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			return err
		})
	case "thrroot":
		if err = unix.Chdir("/"); err == nil {
			err = thread(func() error {
				if err := unix.Unshare(unix.CLONE_FS); err != nil {
					return err
				}
				if err := unix.Chroot(arg); err != nil {
					return err
				}
				return unix.Chdir("/")
			})
		}
	case "capthr", "secthr":
		if err = thread(func() error { return nil }); err == nil {
			err = dropInThisThread(args[0] == "secthr")
		}
	default:
		err = fmt.Errorf("unknown way")
	}
	if err == nil {
		err = unix.Chdir("/")
	}
	if err != nil {
		return fail(err)
	}
	io.WriteString(os.Stdout, "holding\n")
	for {
		time.Sleep(time.Hour)
	}
}

// dropInThisThread drops the calling thread's capabilities, bounding set
// and sets its no_new_privs, each a thread's own; with filter first a
// seccomp filter that allows everything, in this thread only (no TSYNC).
func dropInThisThread(filter bool) error {
	if filter {
		allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
		prog := unix.SockFprog{Len: 1, Filter: &allow[0]}
		if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	for c := range 64 {
		unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	var data [2]unix.CapUserData
	return unix.Capset(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &data[0])
}

// holderBinary is a copy of the test binary where a box's root (any
// uid's) may run it, with a link to it for each of names: a process's
// command name is the name it was started by.
func holderBinary(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "holder")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		out[n] = filepath.Join(dir, "h-"+n)
		if err := os.Symlink(bin, out[n]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// startHolder is the script line that starts the holder of way in the
// background, its output to /dev/null.
func startHolder(bin map[string]string, way, arg string) string {
	// GOMAXPROCS given and its updater off: the runtime reads neither
	// from the cgroup's files (holderMain closes them).
	return fmt.Sprintf("exec sh -c 'GOMAXPROCS=2 GODEBUG=updatemaxprocs=0 %s %s %s %s </dev/null >/dev/null 2>&1 &'\n", bin[way], holderEntry, way, arg)
}

// ut34 F1: a box process started before pivot_root may keep the host
// in ways no look from outside sees all of: a file it mapped shared and
// closed (read and written through /proc/PID/map_files), an O_PATH fd
// of the host's / queued in flight on a socket, a host mount
// namespace's fd, a directory open in a thread's own fd table, a
// thread's own root. pivot_root called the host "detached and
// unreachable from inside" and `probe older_processes` said closed.
// Now every process that ran at pivot_root and still runs is named,
// with what is seen of it (each thread's root, cwd and fds, its
// mappings, namespace fds not the box's), and `exec kill PID`; a box
// whose processes all started after it still gets the plain line. As
// root, and in a --user box the ways that work there.
func TestPivotRootNamesEveryProcessStartedBeforeIt(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	flat := func(s string) string { return regexp.MustCompile(`\n {2,}`).ReplaceAllString(s, " ") }
	dir := boxTempDir(t)
	scratch := scratchDir(t, dir, "victim")
	bin := holderBinary(t, dir, "memsleep", "mmap", "inflight", "nsfd", "thrfd", "thrroot")
	busybox := staticBusybox(t)
	mounted := fmt.Sprintf("/proc/%d/ns/mnt", os.Getpid()) // the host's
	for _, c := range []struct {
		name, flag string
		ways       [][3]string // way, its argument, what the line says it holds
	}{
		{"r", "", [][3]string{
			{"memsleep", busybox, `nothing seen; it started before pivot_root`},
			{"mmap", scratch + "/keep", `a shared writable mapping \(map_files/[0-9a-f]+-[0-9a-f]+\)`},
			{"nsfd", mounted, `fd \d+ \(mnt:\[\d+\], not the box's\)`},
			{"thrfd", scratch, `thread \d+'s fd \d+`},
			{"thrroot", scratch, `thread \d+'s cwd, thread \d+'s root`},
		}},
		{"u", " --user", [][3]string{
			{"memsleep", busybox, `nothing seen; it started before pivot_root`},
			{"inflight", "", `\d+ mapped files? \(map_files\) on the host's filesystem`},
			{"thrfd", scratch, `thread \d+'s fd \d+`},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			build := "new " + c.name + c.flag + "\nunshare all\nmount overlay base\nmount tmpfs /tmp\n"
			probe := "probe older_processes\n"
			// Every process started after pivot_root: the plain line.
			out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state0-"+c.name), build+"pivot_root\nexec sh -c 'cd / && exec sleep 300 &'\n"+probe, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if !strings.Contains(flat(out), "✓ the overlay is the box's / now; the host's root is detached and unreachable from inside\n") || !regexp.MustCompile(`older_processes +│ closed`).MatchString(out) {
				t.Errorf("with every process started after pivot_root, the line is not the plain one or older_processes not closed:\n%s", out)
			}

			var procs string
			ways := c.ways
			if busybox == "" {
				ways = ways[1:]
			}
			for _, w := range ways {
				procs += startHolder(bin, w[0], w[1])
			}
			// Time for each to get where it holds.
			out, code = runStepboxAt(t, 4000, filepath.Join(dir, "state-"+c.name), build+procs+"exec sleep 1\npivot_root\n"+probe, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			onlyKeep(t, scratch, out)
			f := flat(out)
			if strings.Contains(out, "unreachable") {
				t.Errorf("pivot_root calls the host unreachable while processes started before it run:\n%s", out)
			}
			head := fmt.Sprintf("but %d processes of the box started before it still run and may keep a way back to the host:", len(ways))
			if busybox == "" {
				head = fmt.Sprintf("but %d processes of the box still hold the host's filesystem:", len(ways))
			}
			if !strings.Contains(f, head) {
				t.Errorf("output lacks %q:\n%s", head, out)
			}
			for _, w := range ways {
				name := `h-` + w[0]
				if w[0] == "memsleep" {
					name = `\d+` // run from /proc/self/fd/N
				}
				m := regexp.MustCompile(`PID (\d+) \(host \d+\) ` + name + `: ` + w[2] + "[^;]*; `exec kill " + `(\d+)` + "` ends it; start it again after pivot_root").FindStringSubmatch(f)
				if m == nil {
					t.Errorf("pivot_root's line does not name %s as %q:\n%s", w[0], w[2], out)
				} else if m[1] != m[2] {
					t.Errorf("the line names PID %s but says to kill %s:\n%s", m[1], m[2], out)
				}
			}
			// older_processes names each; its evidence is cut at 600
			// characters: the count, and the first.
			first := `started before pivot_root and still runs: what it keeps of the host`
			if busybox == "" {
				first = ""
			}
			if !regexp.MustCompile(`older_processes +│ open +│ the box's processes that hold more than its next command \(` + fmt.Sprint(len(ways)) + `\): PID \d+ \(host \d+\) [^│]*` + first).MatchString(f) {
				t.Errorf("older_processes is not open, or does not name %d processes and the first as %q:\n%s", len(ways), first, out)
			}
		})
	}
}

// staticBusybox is the host's busybox if it is static, which runs from a
// memfd with nothing of the host's mapped; "" if there is none.
func staticBusybox(t *testing.T) string {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			static = static && prog.Type != elf.PT_INTERP
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Log("no static busybox: the process that holds nothing seen is not tried")
	return ""
}

// ut34 F9: after chroot (which moves the root of stepbox's executor
// only), a process started before it keeps the host's root, and
// proc_root read the host through it while older_processes said closed;
// and `probe` without a /proc failed with the internal "open
// /proc/self/mountinfo" error. older_processes names the process whose
// root is not the box's, and the probe without /proc says `mount proc`.
func TestOlderProcessesAfterChrootNamesARootNotTheBoxs(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	flat := func(s string) string { return regexp.MustCompile(`\n {2,}`).ReplaceAllString(s, " ") }
	dir := boxTempDir(t)
	build := "new c\nunshare uts ipc net mnt pid\nexec sh -c 'cd / && exec sleep 300 </dev/null >/dev/null 2>&1 &'\nmount overlay base\nchroot\n"
	out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state0"), build+"probe proc_root\n", "--plain")
	// Which of the probe's needs it names depends on how stepbox was
	// built (a static one is not loaded from /proc/self/fd/N).
	f := flat(out)
	if code == 0 || !regexp.MustCompile("probe: box c has no /proc, which [^:]+: `mount proc` first").MatchString(f) || strings.Contains(f, "open /proc/self/mountinfo") {
		t.Errorf("probe without /proc after chroot: exit %d, not the why and `mount proc`:\n%s", code, out)
	}
	out, code = runStepboxAt(t, 4000, filepath.Join(dir, "state"), build+"mount proc\nprobe older_processes\nexec sh -c 'sleep 301 </dev/null >/dev/null 2>&1 &'\nprobe older_processes\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	f = flat(out)
	re := regexp.MustCompile(`older_processes +│ open +│ the box's processes that hold more than its next command \(1\): PID \d+ \(host \d+\) sleep 300: root not the box's chroot: it started before chroot`)
	if n := len(re.FindAllString(f, -1)); n != 2 {
		t.Errorf("older_processes names the sleep started before chroot %d times, want 2 (alone, also once one started after it runs):\n%s", n, out)
	}
}

// ut34 F11: capabilities, the bounding set, no_new_privs and seccomp
// are each thread's own. A process started before `caps drop all` and
// `nnp` whose main thread dropped them all while a second thread kept
// every capability, or whose main thread has a filter of its own that
// allows everything (a second thread none) before `seccomp deny`, was
// "closed": older_processes read the main thread's status only, and for
// seccomp compared the mode. It reads every thread's, and a process
// that ran when the box's filter was set has none of the box's filter.
func TestOlderProcessesReadsEveryThread(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	flat := func(s string) string { return regexp.MustCompile(`\n {2,}`).ReplaceAllString(s, " ") }
	dir := boxTempDir(t)
	bin := holderBinary(t, dir, "capthr", "secthr")
	build := "new a\nunshare uts ipc net mnt pid\n"
	for _, c := range []struct{ name, steps, want string }{
		{"capthr", "caps drop all\nnnp\n", `: threads? [\d, ]+(and \d+ more)?: CapEff [0-9a-f]{16}, the next command's 0000000000000000, CapPrm [0-9a-f]{16}, CapBnd [0-9a-f]{16}, NoNewPrivs 0`},
		{"secthr", "seccomp deny sethostname\n", ": seccomp filters of its own, not the box's \\(it started before the `seccomp` step\\), threads? [\\d, ]+(and \\d+ more)?: Seccomp 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state-"+c.name), build+startHolder(bin, c.name, "")+"exec sleep 1\n"+c.steps+"probe older_processes\n", "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			re := `older_processes +│ open +│ the box's processes that hold more than its next command \(1\): PID \d+ \(host \d+\) [^:│]*` + c.want
			if !regexp.MustCompile(re).MatchString(flat(out)) {
				t.Errorf("output lacks %q:\n%s", re, out)
			}
		})
	}
}
