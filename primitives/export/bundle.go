// Package export writes what a box has become in forms other tools run:
// an OCI runtime bundle (config.json and rootfs/) for runc, crun or
// youki.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Box is what the box has, as its steps left it and the kernel shows it.
type Box struct {
	Name       string
	Namespaces []string // stepbox's names: uts ipc net pid mnt cgroup time user
	Hostname   string
	Root       string   // host path of the box's merged root, to copy into rootfs/
	Layers     []string // host paths of the overlay's layers, bottom first
	Chroot     bool     // the box changed its root with chroot, not pivot_root
	Mounts     []Mount
	Memory     int64 // bytes; 0: no limit
	Pids       int64 // 0: no limit
	CPUQuota   int64 // µs per period; 0: no limit
	CPUPeriod  uint64
	Caps       Caps
	Clocks     map[string]time.Duration // time namespace offsets: "monotonic", "boottime"
	UIDMap     []specs.LinuxIDMapping
	GIDMap     []specs.LinuxIDMapping
	Args       []string
	Env        []string
	Cwd        string
	UID, GID   uint32
}

// Mount is a mount inside the box's root other than the root itself.
type Mount struct {
	Target  string // as the box sees it
	Type    string // proc, sysfs, tmpfs, devpts, mqueue, bind
	Source  string
	Options []string
}

// Caps are the capability sets of the box's commands, by name.
type Caps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient []string
}

var nsTypes = map[string]specs.LinuxNamespaceType{
	"pid": specs.PIDNamespace, "net": specs.NetworkNamespace, "mnt": specs.MountNamespace, "ipc": specs.IPCNamespace,
	"uts": specs.UTSNamespace, "user": specs.UserNamespace, "cgroup": specs.CgroupNamespace, "time": specs.TimeNamespace,
}

// Spec is the runtime-spec config.json that describes b.
func Spec(b Box) *specs.Spec {
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: b.Hostname,
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: b.Args, Env: b.Env, Cwd: b.Cwd,
			User: specs.User{UID: b.UID, GID: b.GID},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: b.Caps.Bounding, Effective: b.Caps.Effective, Permitted: b.Caps.Permitted,
				Inheritable: b.Caps.Inheritable, Ambient: b.Caps.Ambient,
			},
		},
		Linux: &specs.Linux{Resources: &specs.LinuxResources{}, UIDMappings: b.UIDMap, GIDMappings: b.GIDMap},
	}
	if s.Process.Cwd == "" {
		s.Process.Cwd = "/"
	}
	for _, n := range b.Namespaces {
		if t, ok := nsTypes[n]; ok {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t})
		}
	}
	for clock, d := range b.Clocks {
		if s.Linux.TimeOffsets == nil {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{}
		}
		s.Linux.TimeOffsets[clock] = specs.LinuxTimeOffset{Secs: int64(d / time.Second), Nanosecs: uint32(d % time.Second)}
	}
	for _, m := range b.Mounts {
		sm := specs.Mount{Destination: m.Target, Type: m.Type, Source: m.Source, Options: m.Options}
		if m.Type == "bind" {
			sm.Type = ""
			sm.Options = append([]string{"rbind"}, m.Options...)
		}
		s.Mounts = append(s.Mounts, sm)
	}
	r := s.Linux.Resources
	if b.Memory > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &b.Memory}
	}
	if b.Pids > 0 {
		r.Pids = &specs.LinuxPids{Limit: &b.Pids}
	}
	if b.CPUQuota > 0 {
		r.CPU = &specs.LinuxCPU{Quota: &b.CPUQuota, Period: &b.CPUPeriod}
	}
	return s
}

// WithoutTime is b without its time namespace, for runtimes older than
// the spec (runc before 1.2 refuses "time").
func WithoutTime(b Box) Box {
	var ns []string
	for _, n := range b.Namespaces {
		if n != "time" {
			ns = append(ns, n)
		}
	}
	b.Namespaces, b.Clocks = ns, nil
	return b
}

// ErrNoRoot is returned for a box whose overlay is not mounted yet.
var ErrNoRoot = errors.New("the box has no root of its own yet")

// WriteBundle writes dir/config.json and dir/rootfs, a copy of the box's
// merged root (the layers and the upper dir as the box sees them; other
// filesystems mounted in it are left out, config.json mounts them).
// dir must not exist or be empty.
func WriteBundle(dir string, b Box) error {
	if b.Root == "" {
		return fmt.Errorf("export bundle %s: %w: `mount overlay LAYER…` first", dir, ErrNoRoot)
	}
	if des, err := os.ReadDir(dir); err == nil && len(des) > 0 {
		return fmt.Errorf("export bundle %s: the directory is not empty: give a new or empty one", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("export bundle: %w", err)
	}
	if err := CopyTree(b.Root, filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("export bundle %s: copy the box's root %s: %w", dir, b.Root, err)
	}
	data, err := json.MarshalIndent(Spec(b), "", "  ")
	if err != nil {
		return fmt.Errorf("export bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("export bundle: %w", err)
	}
	return nil
}

// CopyTree copies the tree at src to dst, which it creates: files,
// directories, symlinks, devices and fifos with their owners, modes and
// times; hard links stay links. It stays on src's filesystem: what is
// mounted inside it (proc, a tmpfs, a volume) is not copied.
func CopyTree(src, dst string) error {
	// With a final slash src is followed when it is a symlink itself,
	// as /proc/PID/root is.
	src = strings.TrimSuffix(src, "/") + "/"
	var rootSt unix.Stat_t
	if err := unix.Stat(src, &rootSt); err != nil {
		return &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	links := map[[2]uint64]string{}
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, src)
		to := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Dev != rootSt.Dev {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				// A mount point: an empty directory, as in the layers.
				if err := os.Mkdir(to, 0o755); err != nil {
					return err
				}
				return fs.SkipDir
			}
			return nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, rel)
			return nil
		case unix.S_IFREG:
			if first, ok := links[key]; ok && st.Nlink > 1 {
				return os.Link(first, to)
			}
			if err := copyFile(p, to); err != nil {
				return err
			}
			links[key] = to
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		default:
			if err := unix.Mknod(to, st.Mode, int(st.Rdev)); err != nil {
				return &fs.PathError{Op: "mknod", Path: to, Err: err}
			}
		}
		return meta(to, &st)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, dirs[i]), &st); err != nil {
			return err
		}
		if err := meta(filepath.Join(dst, dirs[i]), &st); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// meta gives p the owner, mode and times of st: chown first, as it
// clears the set-user-ID bit.
func meta(p string, st *unix.Stat_t) error {
	if err := unix.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
		return &fs.PathError{Op: "lchown", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}

// capNames are the capabilities by number (capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
	"CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// CapsOf reads the capability sets of process pid from /proc/PID/status.
func CapsOf(pid int) (Caps, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Caps{}, err
	}
	var c Caps
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":\t")
		if !ok {
			continue
		}
		var set *[]string
		switch k {
		case "CapInh":
			set = &c.Inheritable
		case "CapPrm":
			set = &c.Permitted
		case "CapEff":
			set = &c.Effective
		case "CapBnd":
			set = &c.Bounding
		case "CapAmb":
			set = &c.Ambient
		default:
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return Caps{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		*set = CapNames(mask)
	}
	return c, nil
}

// CapNames names the bits of mask; bits the table lacks are left out.
func CapNames(mask uint64) []string {
	out := []string{}
	for i, n := range capNames {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}
