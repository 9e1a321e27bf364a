package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// probeProcRoot looks for the host's file through /proc/PID/root of PID 1
// and of every other process the box can see.
func probeProcRoot(h Host) Result {
	if h.File == "" {
		return closed("nofile", "no host file to look for")
	}
	if !h.OwnRoot {
		var st unix.Stat_t
		if unix.Stat(h.File, &st) == nil && st.Dev == h.FileDev && st.Ino == h.FileIno {
			return open("hostroot", "the box's root is the host's: it reads the host's %s directly", h.File)
		}
	}
	self := strconv.Itoa(os.Getpid())
	pids := []string{"1"}
	for _, name := range procEntries("/proc", 4096) {
		if _, err := strconv.Atoi(name); err == nil && name != "1" && name != self && len(pids) < 512 {
			pids = append(pids, name)
		}
	}
	var first error
	// From a cwd on the detached old root, ".." leads up to the host's /
	// and stays there: pivot_root(2) moves only the processes whose cwd
	// was the old root itself (ut33 F6).
	up := strings.Repeat("/..", 64)
	for _, pid := range pids {
		p := "/proc/" + pid + "/cwd" + up + h.File
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Dev == h.FileDev && st.Ino == h.FileIno {
			if data, err := readSome(p, 64, anyFile); err == nil {
				return open("cwd", "read the host's %s through /proc/%s/cwd/../..%s, the cwd of a process started before pivot_root: %q", h.File, pid, h.File, strings.TrimSpace(string(data)))
			}
		}
	}
	for _, pid := range pids {
		p := "/proc/" + pid + "/root" + h.File
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil && st.Dev == h.FileDev && st.Ino == h.FileIno {
			data, err := readSome(p, 64, anyFile)
			if err != nil {
				continue
			}
			via := "pid"
			if pid == "1" {
				via = "pid1"
			}
			return open(via, "read the host's %s through %s: %q", h.File, p, strings.TrimSpace(string(data)))
		}
		if first == nil && pid == "1" {
			if err == nil {
				err = errors.New("the box's own file, not the host's")
			}
			first = err
		}
	}
	r, n, ok := otherProcMounts(h, up)
	if ok {
		return r
	}
	return closed("none", "no process the box sees has the host's root (%d tried; /proc/1/root%s: %v)", len(pids)+n, h.File, first)
}

// procMountsKept bounds the proc mounts besides /proc that proc_root
// looks through, and procPIDsKept the processes it tries in each.
const (
	procMountsKept = 16
	procPIDsKept   = 512
)

// otherProcMounts looks for the host's file through every proc mount of
// the box's besides /proc, as through /proc: a proc mounted before
// `unshare pid` (in the new root, which pivot_root carries along) lists
// the host's processes, whose cwd and root are the host's (ut34 F5). It
// returns how many processes it tried.
func otherProcMounts(h Host, up string) (Result, int, bool) {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return Result{}, 0, false
	}
	tried, seen := 0, 0
	for _, m := range mounts {
		if m.FSType != "proc" || m.MountPoint == "/proc" {
			continue
		}
		if seen++; seen > procMountsKept {
			break
		}
		n := 0
		for _, pid := range procEntries(m.MountPoint, 4096) {
			if _, err := strconv.Atoi(pid); err != nil || n >= procPIDsKept {
				continue
			}
			n++
			dir := strings.TrimSuffix(m.MountPoint, "/") + "/" + pid
			for _, p := range []string{dir + "/cwd" + up + h.File, dir + "/root" + h.File} {
				var st unix.Stat_t
				if unix.Stat(p, &st) != nil || st.Dev != h.FileDev || st.Ino != h.FileIno {
					continue
				}
				if data, err := readSome(p, 64, anyFile); err == nil {
					return open("procmount", "read the host's %s through %s, a proc mount of the box's besides /proc, which lists a process whose cwd or root is the host's: %q", h.File, strings.Replace(p, up, "/../..", 1), strings.TrimSpace(string(data))), 0, true
				}
			}
		}
		tried += n
	}
	return Result{}, tried, false
}

// probeOpenByHandle is the shocker attack, read-only: open the host's
// file by its handle, with any descriptor on the host's filesystem as
// the mount. The kernel checks CAP_DAC_READ_SEARCH first.
func probeOpenByHandle(h Host) Result {
	if len(h.Handle) == 0 {
		return closed("nofile", "the host gave no file handle")
	}
	at := "/"
	if mounts, err := procfs.GetMounts(); err == nil {
		for _, m := range mounts {
			if m.MajorMinorVer == fmt.Sprintf("%d:%d", unix.Major(h.FileDev), unix.Minor(h.FileDev)) {
				at = m.MountPoint
				break
			}
		}
	}
	mountFD, err := unix.Open(at, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return closed("nomount", "open(%s): %v", at, err)
	}
	defer unix.Close(mountFD)
	fd, err := unix.OpenByHandleAt(mountFD, unix.NewFileHandle(h.HandleType, h.Handle), unix.O_RDONLY)
	if errors.Is(err, unix.EPERM) {
		return closed("cap", "open_by_handle_at: EPERM (no CAP_DAC_READ_SEARCH)")
	}
	if err != nil {
		return open("cap", "open_by_handle_at passed the CAP_DAC_READ_SEARCH check (%v, with %s as the mount): a descriptor on the host's filesystem would open any host file", err, at)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64)
	n, _ := unix.Read(fd, buf)
	return open("read", "opened the host's %s by its handle through %s: %q", h.File, at, strings.TrimSpace(string(buf[:n])))
}

// pathsOf are the kernel's files a probe asks for: a mask over them (a
// read-only bind, /dev/null) closes the probe, and the session asks
// whose mask it is (MaskedPaths).
var pathsOf = map[string][]string{
	"proc_sys": {"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"},
	"sys":      {"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper", "/sys/power/state", "/sys/kernel/profiling"},
	"kallsyms": {"/proc/kallsyms"},
}

// MaskedPaths are the files whose masks close probe name, if any.
func MaskedPaths(name string) []string { return pathsOf[name] }

// writable reports access(path, W_OK) for the first of paths that exists.
func writable(paths []string) (string, error) {
	err := error(unix.ENOENT)
	for _, p := range paths {
		if err = unix.Access(p, unix.W_OK); !errors.Is(err, unix.ENOENT) {
			return p, err
		}
	}
	return paths[0], err
}

// probeProcSys asks for write access to host-wide sysctls: the kernel
// runs core_pattern's program as root on the host.
func probeProcSys(Host) Result {
	p, err := writable(pathsOf["proc_sys"])
	if err != nil {
		return closed("write", "access(%s, W_OK): %v", p, err)
	}
	return open("write", "access(%s, W_OK) = 0: the host's, not the box's", p)
}

// probeSys asks for write access to sysfs, which no namespace covers.
func probeSys(Host) Result {
	p, err := writable(pathsOf["sys"])
	if err != nil {
		return closed("write", "access(%s, W_OK): %v", p, err)
	}
	return open("write", "access(%s, W_OK) = 0: a host-wide setting", p)
}

// privately runs f on a thread of its own in a new mount namespace whose
// mounts propagate nowhere; the thread ends with f, and the namespace
// with it.
func privately(f func() Result) Result {
	c := make(chan Result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			c <- closed("unshare", "unshare(CLONE_NEWNS): %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			c <- closed("unshare", "mount(\"/\", MS_REC|MS_PRIVATE): %v", err)
			return
		}
		c <- f()
	}()
	return <-c
}

// probeRemount tries to make each read-only mount of the box writable
// again, in a mount namespace of its own: a read-only /sys, /proc/sys or
// volume protects only from a process that cannot remount.
func probeRemount(Host) Result {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return closed("none", "read mountinfo: %v", err)
	}
	var ro []*procfs.MountInfo
	for _, m := range mounts {
		if _, ok := m.Options["ro"]; ok && m.MountPoint != "/" {
			ro = append(ro, m)
		}
	}
	if len(ro) == 0 {
		return closed("none", "the box has no read-only mount")
	}
	return privately(func() Result {
		var done []string
		var last error
		for _, m := range ro {
			var sfs unix.Statfs_t
			if unix.Statfs(m.MountPoint, &sfs) != nil {
				continue
			}
			flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
			for _, f := range [][2]uintptr{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC}} {
				if uintptr(sfs.Flags)&f[0] != 0 {
					flags |= f[1]
				}
			}
			if last = unix.Mount("", m.MountPoint, "", flags, ""); last == nil {
				done = append(done, m.MountPoint)
			}
		}
		if len(done) == 0 {
			return closed("remount", "mount(MS_REMOUNT|MS_BIND) without MS_RDONLY, on %d read-only mounts: %v", len(ro), last)
		}
		return open("remount", "remounted read-write: %s", strings.Join(done, " "))
	})
}

// procEntries lists at most n names of /proc, the kernel's: the box may
// mount a directory of its own there, as large as it likes, or a FIFO.
func procEntries(dir string, n int) []string {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil || sfs.Type != unix.PROC_SUPER_MAGIC {
		return nil
	}
	names, _ := f.Readdirnames(n)
	return names
}
