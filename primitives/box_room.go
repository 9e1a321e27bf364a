package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// What a box takes from the host: an idle box is its executor and, after
// `unshare pid`, its PID 1, one thread and about 1.5 MB resident each;
// the allowance is mostly room for the commands it runs. A new box is refused before it would
// leave the host less than the reserves: stepbox's own use of the host is
// bounded, and the error says by what.
const (
	// MaxBoxes is the most boxes one session holds, whatever the host has.
	MaxBoxes        = 64
	boxTasks        = 16
	boxMemory       = 32 << 20
	hostTaskReserve = 512
	hostMemReserve  = 256 << 20
)

// hostRoom is what the host can still give a process's new children,
// past the reserves it keeps for itself: tasks and memory, each with what
// bounds it.
type hostRoom struct {
	tasks, memory     int64  // -1: unbounded
	tasksBy, memoryBy string // the limit that bounds it, in the kernel's words
}

// roomTree is a cgroup tree whose limits bound a process's new children:
// its mount point and, on v1, the controllers it holds.
type roomTree struct {
	mount       string
	controllers []string
}

// roomTrees are the host's cgroup trees as roomFor reads them; none
// where the host has no cgroup tree stepbox can read (the system-wide
// limits then stand). Where the trees are mounted does not change while a
// session runs: it finds them once (Session.roomTrees); the limits and
// the usage are read at every `new`.
type roomTrees struct {
	version int
	trees   []roomTree
}

// findRoomTrees finds the cgroup trees of the host as the process pid
// sees them.
func findRoomTrees(fs procfs.FS, pid int) roomTrees {
	h, err := cgroups.Open(cgroups.DefaultRoot, fs, pid)
	if err != nil {
		return roomTrees{}
	}
	place, err := h.Place("")
	if err != nil {
		return roomTrees{}
	}
	t := roomTrees{version: h.Version()}
	for _, d := range place.Dirs {
		t.trees = append(t.trees, roomTree{strings.TrimSuffix(d.Path, strings.TrimSuffix(d.Cgroup, "/")), d.Controllers})
	}
	return t
}

// roomForNew is roomFor of the session's own process, in the cgroup
// trees it found at its first `new`.
func (s *Session) roomForNew() (hostRoom, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return hostRoom{tasks: -1, memory: -1}, err
	}
	s.mu.Lock()
	t := s.room
	s.mu.Unlock()
	if t == nil {
		found := findRoomTrees(fs, os.Getpid())
		t = &found
		s.mu.Lock()
		s.room = t
		s.mu.Unlock()
	}
	return roomIn(fs, os.Getpid(), *t)
}

// roomFor reads, for the process pid, the tasks and memory the kernel
// will still let it and its children have: the system-wide threads-max and
// pid_max, MemAvailable, and the pids and memory limits of its cgroup and
// every cgroup above it.
func roomFor(pid int) (hostRoom, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return hostRoom{tasks: -1, memory: -1}, err
	}
	return roomIn(fs, pid, findRoomTrees(fs, pid))
}

// roomIn is roomFor in the cgroup trees t.
func roomIn(fs procfs.FS, pid int, t roomTrees) (hostRoom, error) {
	r := hostRoom{tasks: -1, memory: -1}
	// /proc/loadavg's fourth field is "runnable/total" scheduling
	// entities: every thread on the host (proc(5)).
	b, err := readSmall("/proc/loadavg")
	if err != nil {
		return r, err
	}
	var total int64
	if f := strings.Fields(string(b)); len(f) >= 4 {
		_, after, _ := strings.Cut(f[3], "/")
		total, _ = strconv.ParseInt(after, 10, 64)
	}
	for _, k := range []string{"threads-max", "pid_max"} {
		if max, err := readInt("/proc/sys/kernel/" + k); err == nil {
			r.lowerTasks(max-total-hostTaskReserve, fmt.Sprintf("kernel.%s (%d tasks, %d in use, of which stepbox leaves %d to the host)", strings.ReplaceAll(k, "-", "_"), max, total, hostTaskReserve))
		}
	}
	if mi, err := fs.Meminfo(); err == nil && mi.MemAvailableBytes != nil {
		r.lowerMemory(int64(*mi.MemAvailableBytes)-hostMemReserve, fmt.Sprintf("MemAvailable in /proc/meminfo (%d MB, of which stepbox leaves %d MB to the host)", *mi.MemAvailableBytes>>20, hostMemReserve>>20))
	}
	if len(t.trees) == 0 {
		return r, nil
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return r, nil
	}
	member, err := p.Cgroups()
	if err != nil {
		return r, nil
	}
	for _, tree := range t.trees {
		// On v1 only the pids and memory trees hold these limits.
		pids, memory := t.version != 1 || slices.Contains(tree.controllers, "pids"), t.version != 1 || slices.Contains(tree.controllers, "memory")
		if !pids && !memory {
			continue
		}
		for _, m := range member {
			if t.version == 1 && (len(m.Controllers) == 0 || !sameControllers(m.Controllers, tree.controllers)) {
				continue
			}
			r.readLimits(tree.mount, filepath.Join(tree.mount, m.Path), t.version, pids, memory)
		}
	}
	return r, nil
}

func sameControllers(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// v1Unlimited is where cgroup v1's memory.limit_in_bytes reads when no
// limit is set (the page counter's maximum, PAGE_COUNTER_MAX pages): no
// usage can bring it below what MemAvailable allows.
const v1Unlimited = 1 << 62

// readLimits lowers r by the pids limits, the memory limits or both of
// dir and every cgroup above it, up to and not including the root of the
// tree at mount: the root cgroup takes no limit (v2 and v1's pids
// hierarchy have no limit file there, and v1 refuses a write to its
// memory.limit_in_bytes with EINVAL).
func (r *hostRoom) readLimits(mount, dir string, version int, pids, memory bool) {
	maxF, curF, memMaxF, memCurF := "pids.max", "pids.current", "memory.max", "memory.current"
	if version == 1 {
		memMaxF, memCurF = "memory.limit_in_bytes", "memory.usage_in_bytes"
	}
	for d := dir; strings.HasPrefix(d, mount) && d != mount && d != "/"; d = filepath.Dir(d) {
		if pids {
			if max, err := readInt(filepath.Join(d, maxF)); err == nil {
				if cur, err := readInt(filepath.Join(d, curF)); err == nil {
					r.lowerTasks(max-cur, filepath.Join(d, maxF)+" ("+strconv.FormatInt(max, 10)+" tasks, "+strconv.FormatInt(cur, 10)+" in use)")
				}
			}
		}
		if memory {
			if max, err := readInt(filepath.Join(d, memMaxF)); err == nil && max < v1Unlimited {
				if cur, err := readInt(filepath.Join(d, memCurF)); err == nil {
					r.lowerMemory(max-cur, filepath.Join(d, memMaxF))
				}
			}
		}
	}
}

func (r *hostRoom) lowerTasks(n int64, by string) {
	if r.tasks < 0 || n < r.tasks {
		r.tasks, r.tasksBy = max(n, 0), by
	}
}

func (r *hostRoom) lowerMemory(n int64, by string) {
	if r.memory < 0 || n < r.memory {
		r.memory, r.memoryBy = max(n, 0), by
	}
}

// readInt reads a file holding one integer; "max" is not one (no limit).
func readInt(path string) (int64, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readSmall reads a one-line kernel file (sysctl, cgroup, /proc/loadavg)
// with one read(2): three syscalls where os.ReadFile makes five. The
// kernel hands such a file over whole in one read; one that fills the
// buffer is not one line, and is refused.
func readSmall(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if n == len(buf) {
		return nil, fmt.Errorf("read %s: longer than the %d bytes of one line", path, len(buf))
	}
	return buf[:n], nil
}

// roomForBox refuses a new box when the session holds MaxBoxes, or when
// the host cannot give it the tasks or memory it takes; the error names
// the limit.
func roomForBox(name string, boxes int, r hostRoom) error {
	if boxes >= MaxBoxes {
		return fmt.Errorf("new %s: this session holds %d boxes, the most one session keeps (each is a process of its own, with its namespaces and mounts): `rm` one first", name, boxes)
	}
	if r.tasks >= 0 && r.tasks < boxTasks {
		return fmt.Errorf("new %s: room for %d more tasks is left, bounded by %s; a box takes about %d: `rm` a box, or raise that limit", name, r.tasks, r.tasksBy, boxTasks)
	}
	if r.memory >= 0 && r.memory < boxMemory {
		return fmt.Errorf("new %s: %d MB of memory are left, bounded by %s; a box takes about %d MB: `rm` a box first", name, r.memory>>20, r.memoryBy, boxMemory>>20)
	}
	return nil
}

// upperReserve is the free space below which `mount overlay` refuses a
// new upper dir on a filesystem it shares with the host (by default /run,
// a tmpfs the host itself needs), and a command is not started in a box
// whose upper dir is there: a writing box would fill that first.
var upperReserve int64 = 128 << 20

// roomForUpper refuses an upper dir in dir when the filesystem holding it
// is shared with the host and has less than upperReserve free, and names
// that filesystem. A filesystem mounted at or below the state dir own (a
// size-limited one of stepbox's own) is the box's to fill.
func roomForUpper(dir, own string) error {
	where, free, shared, err := upperSpace(dir, own)
	if err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	if shared && free < upperReserve {
		return fmt.Errorf("mount overlay: the box's upper dir would go on %s, which has %d MB free and is shared with the host; a box writing there would fill it for the host too, so stepbox wants %d MB: free space there, or give stepbox a filesystem of its own (--state-dir on a size-limited tmpfs)", where, free>>20, upperReserve>>20)
	}
	return nil
}

// roomToWrite refuses to start cmd, which writes to the box's upper dir
// as any command may, once the filesystem holding it, shared with the
// host, has less than upperReserve free: the box's writes stop before
// they take the host's last space, not after. A command already running
// is not stopped. Called with b.mu held.
func (b *Box) roomToWrite(cmd string) error {
	// On stepbox's tmpfs (box_upper.go) the box fills only its own, as
	// MountOverlay knows already.
	if b.fs.Upper == "" || b.upperSize > 0 {
		return nil
	}
	where, free, shared, err := upperSpace(b.fs.Upper, b.session.Dirs.root())
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if shared && free < upperReserve {
		return fmt.Errorf("%s: box %s writes to its upper dir on %s, which has %d MB free and is shared with the host; below %d MB stepbox starts nothing more there, so that the box cannot fill it for the host: free space there, or `rm` the box", cmd, b.Name, where, free>>20, upperReserve>>20)
	}
	return nil
}

// upperSpace is the free space of the filesystem holding dir, where that
// is (its mount point and type), and whether it is shared with the host:
// not mounted at or below own, the state dir.
func upperSpace(dir, own string) (where string, free int64, shared bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", 0, false, fmt.Errorf("statfs(%q): %w", dir, err)
	}
	free = int64(st.Bavail) * st.Bsize
	where, point := dir, ""
	real, _ := filepath.EvalSymlinks(dir)
	own, _ = filepath.EvalSymlinks(own)
	if mounts, err := procfs.GetMounts(); err == nil && real != "" {
		for _, m := range mounts {
			if (real == m.MountPoint || strings.HasPrefix(real, strings.TrimSuffix(m.MountPoint, "/")+"/")) && len(m.MountPoint) >= len(point) {
				point, where = m.MountPoint, m.MountPoint+" ("+m.FSType+")"
			}
		}
	}
	shared = own == "" || !(point == own || strings.HasPrefix(point, own+"/"))
	return where, free, shared, nil
}

// root is the directory that holds all of stepbox's state: --state-dir,
// where Run and Lib are side by side, or else Run.
func (d Dirs) root() string {
	if filepath.Dir(d.Run) == filepath.Dir(d.Lib) {
		return filepath.Dir(d.Run)
	}
	return d.Run
}
