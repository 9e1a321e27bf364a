package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// v2Fixture is a plain directory tree laid out like a systemd host's
// /sys/fs/cgroup on cgroup v2 (file names and formats copied from Linux
// 6.x), with a cgroupFS that keeps the kernel's v2 rules on it: new
// cgroups get the control files of the controllers their parent enables,
// subtree_control and cgroup.procs obey the no-internal-processes rule,
// rmdir refuses cgroups with children or processes.
type v2Fixture struct {
	t    testing.TB
	root string
	fds  map[int]string
	next int
	// procDir is the /proc/PID fixture of the last proc call.
	procDir string
}

// rootFiles are the control files of a real v2 root cgroup.
var rootFiles = map[string]string{
	"cgroup.controllers":     "cpuset cpu io memory hugetlb pids rdma misc",
	"cgroup.subtree_control": "",
	"cgroup.procs":           "2\n3\n",
	"cgroup.threads":         "2\n3\n",
	"cgroup.max.depth":       "max",
	"cgroup.max.descendants": "max",
	"cgroup.stat":            "nr_descendants 0\nnr_dying_descendants 0\n",
	"cgroup.pressure":        "1",
	"cpu.stat":               "usage_usec 81234567\nuser_usec 51234567\nsystem_usec 30000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
	"cpu.pressure":           "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
	"memory.stat":            "anon 0\nfile 0\n",
	"memory.pressure":        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
	"io.stat":                "",
	"cpuset.cpus.effective":  "0-3",
	"cpuset.mems.effective":  "0",
}

// controllerFiles are what the kernel adds to a cgroup when its parent
// enables a controller for it; mode 0 marks read-only files.
var controllerFiles = map[string][][3]string{
	"":       {{"cgroup.type", "domain", "w"}, {"cgroup.procs", "", "w"}, {"cgroup.threads", "", "w"}, {"cgroup.subtree_control", "", "w"}, {"cgroup.events", "populated 0\nfrozen 0\n", ""}, {"cgroup.freeze", "0", "w"}, {"cgroup.kill", "", "w"}, {"cgroup.max.depth", "max", "w"}, {"cgroup.max.descendants", "max", "w"}, {"cgroup.stat", "nr_descendants 0\nnr_dying_descendants 0\n", ""}, {"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n", ""}},
	"cpu":    {{"cpu.max", "max 100000", "w"}, {"cpu.weight", "100", "w"}, {"cpu.max.burst", "0", "w"}, {"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n", ""}},
	"memory": {{"memory.current", "0", ""}, {"memory.max", "max", "w"}, {"memory.high", "max", "w"}, {"memory.low", "0", "w"}, {"memory.min", "0", "w"}, {"memory.peak", "0", "w"}, {"memory.swap.max", "max", "w"}, {"memory.swap.current", "0", ""}, {"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n", ""}, {"memory.oom.group", "0", "w"}},
	"pids":   {{"pids.current", "0", ""}, {"pids.max", "max", "w"}, {"pids.peak", "0", ""}, {"pids.events", "max 0\n", ""}},
	"io":     {{"io.max", "", "w"}, {"io.weight", "default 100", "w"}},
	"cpuset": {{"cpuset.cpus", "", "w"}, {"cpuset.mems", "", "w"}, {"cpuset.cpus.effective", "0-3", ""}},
}

// newV2Fixture lays out a host whose root enables the controllers in
// rootEnabled, plus the cgroups in tree (path → PIDs in it; nil for none).
func newV2Fixture(t testing.TB, rootEnabled string, tree map[string][]int) *v2Fixture {
	t.Helper()
	f := &v2Fixture{t: t, root: t.TempDir(), fds: map[int]string{}, next: 3}
	for name, text := range rootFiles {
		mode := os.FileMode(0o444)
		if name == "cgroup.subtree_control" || name == "cgroup.procs" || name == "cgroup.threads" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(f.root, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	if rootEnabled != "" {
		f.write(f.root, "cgroup.subtree_control", rootEnabled)
	}
	paths := make([]string, 0, len(tree))
	for p := range tree {
		paths = append(paths, p)
	}
	slices.Sort(paths) // parents before children
	for _, p := range paths {
		dir := filepath.Join(f.root, p)
		if err := f.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("fixture mkdir %s: %v", p, err)
		}
		if !strings.HasSuffix(p, ".scope") && !strings.HasSuffix(p, ".service") {
			var words []string
			offered := strings.Fields(f.read(p, "cgroup.controllers"))
			for _, c := range offered {
				words = append(words, "+"+c)
			}
			if len(words) > 0 {
				f.write(dir, "cgroup.subtree_control", strings.Join(words, " "))
			}
		}
		for _, pid := range tree[p] {
			f.write(dir, "cgroup.procs", strconv.Itoa(pid))
		}
	}
	return f
}

// write performs one write through the fixture's kernel rules.
func (f *v2Fixture) write(dir, file, value string) {
	f.t.Helper()
	fd, err := f.Open(filepath.Join(dir, file), writeFlags)
	if err == nil {
		_, err = f.Write(fd, []byte(value))
		_ = f.Close(fd)
	}
	if err != nil {
		f.t.Fatalf("fixture write %q to %s/%s: %v", value, dir, file, err)
	}
}

func (f *v2Fixture) read(dir, file string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, dir, file))
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// proc writes the /proc fixture for session pid: its cgroup and mountinfo
// files, in the kernel's formats, with the cgroup2 mount at f.root
// showing mountRoot.
func (f *v2Fixture) proc(pid int, cgroup, mountRoot string) procfs.FS {
	f.t.Helper()
	dir := filepath.Join(f.t.TempDir(), strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.procDir = dir
	mountinfo := "22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n" +
		fmt.Sprintf("31 22 0:26 %s %s rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n", mountRoot, f.root)
	if err := os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(mountinfo), 0o444); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::"+cgroup+"\n"), 0o444); err != nil {
		f.t.Fatal(err)
	}
	fs, err := procfs.NewFS(filepath.Dir(dir))
	if err != nil {
		f.t.Fatal(err)
	}
	return fs
}

// open opens the fixture as a session in cgroup would, with mountRoot as
// the top of the mount (a container's cgroup namespace shows a subtree).
func (f *v2Fixture) open(pid int, cgroup, mountRoot string) *unified {
	f.t.Helper()
	h, err := Open(f.root, f.proc(pid, cgroup, mountRoot), pid)
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	u, ok := h.(*unified)
	if !ok {
		f.t.Fatalf("Open on a v2 tree returned %T, want the v2 implementation", h)
	}
	u.fs = f
	return u
}

func (f *v2Fixture) Mkdir(path string, mode uint32) error {
	if err := unix.Mkdir(path, mode); err != nil {
		return err
	}
	enabled, err := os.ReadFile(filepath.Join(filepath.Dir(path), "cgroup.subtree_control"))
	if err != nil {
		return unix.ENOENT
	}
	ctrls := strings.Fields(string(enabled))
	files := slices.Clone(controllerFiles[""])
	for _, c := range ctrls {
		files = append(files, controllerFiles[c]...)
	}
	files = append(files, [3]string{"cgroup.controllers", strings.Join(ctrls, " "), ""})
	for _, fl := range files {
		if err := f.set(path, fl[0], fl[1], fl[2] == "w"); err != nil {
			return err
		}
	}
	return nil
}

// set lays down one control file as the kernel shows it, read-only unless
// writable, replacing what was there (the cpu controller's cpu.stat
// replaces the core one).
func (f *v2Fixture) set(dir, file, text string, writable bool) error {
	mode := os.FileMode(0o444)
	if writable {
		mode = 0o644
	}
	p := filepath.Join(dir, file)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(p, []byte(text), mode)
}

func (f *v2Fixture) Rmdir(path string) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		return unix.ENOENT
	}
	for _, e := range entries {
		if e.IsDir() {
			return unix.EBUSY
		}
	}
	if n, _ := procCount(f, path); n > 0 {
		return unix.EBUSY
	}
	return os.RemoveAll(path)
}

func (f *v2Fixture) Open(path string, flags int) (int, error) {
	if !exists(path) {
		return -1, unix.ENOENT
	}
	fd := f.next
	f.next++
	f.fds[fd] = path
	return fd, nil
}

func (f *v2Fixture) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (f *v2Fixture) Stat(path string) error { _, err := os.Stat(path); return err }

func (f *v2Fixture) Close(fd int) error {
	if _, ok := f.fds[fd]; !ok {
		return unix.EBADF
	}
	delete(f.fds, fd)
	return nil
}

func (f *v2Fixture) Write(fd int, p []byte) (int, error) {
	path, ok := f.fds[fd]
	if !ok {
		return -1, unix.EBADF
	}
	dir, file := filepath.Dir(path), filepath.Base(path)
	value := strings.TrimSpace(string(p))
	var err error
	switch file {
	case "cgroup.subtree_control":
		err = f.subtreeControl(dir, value)
	case "cgroup.procs":
		err = f.migrate(dir, value)
	case "cgroup.kill":
		// The kernel ends every process in dir and below it at once.
		if value != "1" {
			return -1, unix.EINVAL
		}
		err = filepathWalkDirs(dir, func(d string) error {
			return os.WriteFile(filepath.Join(d, "cgroup.procs"), nil, 0o644)
		})
	case "memory.max", "memory.swap.max", "pids.max":
		if _, perr := parseMax(value); perr != nil {
			return -1, unix.EINVAL
		}
		err = os.WriteFile(path, []byte(value+"\n"), 0o644)
	case "cpu.max":
		q, per, _ := strings.Cut(value, " ")
		if _, perr := parseMax(q); perr != nil {
			return -1, unix.EINVAL
		}
		if _, perr := strconv.Atoi(per); perr != nil {
			return -1, unix.EINVAL
		}
		err = os.WriteFile(path, []byte(value+"\n"), 0o644)
	default:
		err = os.WriteFile(path, []byte(value+"\n"), 0o644)
	}
	if err != nil {
		return -1, err
	}
	return len(p), nil
}

// subtreeControl keeps the kernel's rules: only offered controllers, and
// not in a non-root cgroup that holds processes; not off while a child
// still enables it.
func (f *v2Fixture) subtreeControl(dir, value string) error {
	on, _ := subtree(f, dir)
	offered, _ := readFile(filepath.Join(dir, "cgroup.controllers"))
	for _, w := range strings.Fields(value) {
		c := w[1:]
		switch w[0] {
		case '+':
			if !slices.Contains(strings.Fields(offered), c) {
				return unix.ENOENT
			}
			if n, _ := procCount(f, dir); n > 0 && !isRoot(f, dir) {
				return unix.EBUSY
			}
			if !slices.Contains(on, c) {
				on = append(on, c)
			}
		case '-':
			kids, _ := subdirs(dir)
			for _, k := range kids {
				if ks, _ := subtree(f, filepath.Join(dir, k)); slices.Contains(ks, c) {
					return unix.EBUSY
				}
			}
			on = slices.DeleteFunc(on, func(x string) bool { return x == c })
		default:
			return unix.EINVAL
		}
	}
	slices.Sort(on)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(on, " ")+"\n"), 0o644); err != nil {
		return err
	}
	kids, _ := subdirs(dir)
	for _, k := range kids {
		if err := f.offer(filepath.Join(dir, k), on); err != nil {
			return err
		}
	}
	return nil
}

// offer gives the existing cgroup dir the controllers its parent now
// switches on, as the kernel does at once: cgroup.controllers changes, and
// the control files of a controller come and go with it.
func (f *v2Fixture) offer(dir string, ctrls []string) error {
	had := strings.Fields(f.readAbs(dir, "cgroup.controllers"))
	core := map[string]bool{}
	for _, fl := range controllerFiles[""] {
		core[fl[0]] = true
	}
	for _, c := range had {
		if slices.Contains(ctrls, c) {
			continue
		}
		for _, fl := range controllerFiles[c] {
			if core[fl[0]] {
				continue // cpu.stat stays, with the core's fields
			}
			if err := os.Remove(filepath.Join(dir, fl[0])); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	for _, c := range ctrls {
		if slices.Contains(had, c) {
			continue
		}
		for _, fl := range controllerFiles[c] {
			if err := f.set(dir, fl[0], fl[1], fl[2] == "w"); err != nil {
				return err
			}
		}
	}
	return f.set(dir, "cgroup.controllers", strings.Join(ctrls, " "), false)
}

func (f *v2Fixture) readAbs(dir, file string) string {
	b, _ := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b))
}

// migrate moves a PID into dir, out of whichever cgroup held it.
func (f *v2Fixture) migrate(dir, value string) error {
	pid, err := strconv.Atoi(value)
	if err != nil || pid <= 0 {
		return unix.EINVAL
	}
	if on, _ := subtree(f, dir); len(on) > 0 && !isRoot(f, dir) {
		return unix.EBUSY
	}
	err = filepathWalkDirs(f.root, func(d string) error {
		pids, err := readPIDs(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			return err
		}
		kept := slices.DeleteFunc(pids, func(p int) bool { return p == pid })
		if d == dir {
			kept = append(kept, pid)
		}
		var b strings.Builder
		for _, p := range kept {
			fmt.Fprintln(&b, p)
		}
		return os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(b.String()), 0o644)
	})
	return err
}

func filepathWalkDirs(dir string, fn func(string) error) error {
	if err := fn(dir); err != nil {
		return err
	}
	kids, err := subdirs(dir)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := filepathWalkDirs(filepath.Join(dir, k), fn); err != nil {
			return err
		}
	}
	return nil
}
