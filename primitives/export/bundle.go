// Package export writes what a box has become in forms other tools run:
// an OCI runtime bundle (config.json and rootfs/) for runc, crun or
// youki.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
	"stepbox/primitives/outfile"
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
	LeftOut    []string // mounts in the root the exports do not carry: "/tmp/x (ext4, a bind mount of its /etc)"
	Memory     int64    // bytes; 0: no limit
	Pids       int64    // 0: no limit
	CPUQuota   int64    // µs per period; 0: no limit
	CPUPeriod  uint64
	Caps       Caps
	CapsSet    bool // a caps step chose Caps; without one they are the executor's
	// MaskedPaths and ReadonlyPaths are Docker's, when the box ran
	// `mount mask`; the runtime masks them as runc does.
	MaskedPaths, ReadonlyPaths []string
	NoNewPrivs                 bool
	Seccomp                    *specs.LinuxSeccomp      // the rules the box's filter was built from, or nil
	Clocks                     map[string]time.Duration // time namespace offsets: "monotonic", "boottime"
	UIDMap                     []specs.LinuxIDMapping
	GIDMap                     []specs.LinuxIDMapping
	Args                       []string
	Env                        []string
	Cwd                        string
	UID, GID                   uint32
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
			NoNewPrivileges: b.NoNewPrivs,
		},
		Linux: &specs.Linux{Resources: &specs.LinuxResources{}, UIDMappings: b.UIDMap, GIDMappings: b.GIDMap, Seccomp: b.Seccomp},
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
	userNS := slices.Contains(b.Namespaces, "user")
	for _, m := range b.Mounts {
		sm := specs.Mount{Destination: m.Target, Type: m.Type, Source: m.Source, Options: m.Options}
		if m.Type == "bind" {
			sm.Type = ""
			sm.Options = append([]string{"rbind"}, m.Options...)
		}
		if userNS {
			sm.Options = boxIDOptions(sm.Options, b.UIDMap, b.GIDMap)
		}
		s.Mounts = append(s.Mounts, sm)
	}
	if devTmpfsNeeded(b) {
		// Before any mount under /dev, which would be hidden under it.
		i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return strings.HasPrefix(m.Destination, "/dev/") })
		if i < 0 {
			i = len(s.Mounts)
		}
		s.Mounts = slices.Insert(s.Mounts, i, devTmpfs())
	}
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = b.MaskedPaths, b.ReadonlyPaths
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

// devTmpfs is the /dev of runc's own spec (`runc spec`, `runc spec
// --rootless`), with the options `mount dev` gives its tmpfs: nr_inodes=
// too, which runc's lacks, or the box's uid 0 may fill it with ~3 M
// empty files of kernel memory that size= does not count (ut35 G1).
func devTmpfs() specs.Mount {
	return specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k", "nr_inodes=16384"}}
}

// devTmpfsNeeded reports whether the bundle of b mounts a tmpfs at /dev
// that the box did not have: b has a user namespace of its own and no
// mount at /dev. The runtime must supply /dev/null, zero, full, random,
// urandom and tty (runtime-spec config-linux.md, "Default Devices"); in a
// user namespace mknod(2) of a device is refused, so runc binds the
// host's node, on a file it first creates in the rootfs's /dev as the
// container's root (libcontainer/rootfs_linux.go, createDevices). The
// /dev of the box's root is its layer's, host root's, whom the
// namespace does not map, so that root may not create anything there:
// runc failed with "error creating device nodes: open …/dev/null:
// permission denied". On a tmpfs the container's root mounts it can, as
// with `runc spec --rootless` and the box's own `mount dev`. Binds of the
// host's nodes among config.json's mounts would not spare runc its own:
// it still creates each default device after the mounts, with
// open(O_CREAT|O_TRUNC), and opening a bound /dev/tty fails (ENXIO) in
// its init, which has no controlling terminal.
func devTmpfsNeeded(b Box) bool {
	return slices.Contains(b.Namespaces, "user") && !slices.ContainsFunc(b.Mounts, func(m Mount) bool { return m.Target == "/dev" })
}

// DevNote says, when the bundle of b mounts a tmpfs at /dev the box did
// not have (devTmpfsNeeded), why; "" when it does not.
func DevNote(b Box) string {
	if !devTmpfsNeeded(b) {
		return ""
	}
	return "config.json mounts a tmpfs at /dev, which the box did not have, as `runc spec --rootless` does: in the box's user namespace mknod(2) of a device is refused, " +
		"so runc binds the host's null, zero, full, random, urandom and tty instead, on files it makes in /dev as the container's root; the /dev of the box's root is its layer's, " +
		"host root's, whom the namespace does not map, and runc could not make them there. What the layer has in /dev is hidden under the tmpfs"
}

// boxIDOptions is a mount's options with its uid= and gid= in the IDs
// of the box's user namespace. mountinfo shows them as the host's
// (from_kuid_munged(&init_user_ns, …): a tmpfs the box's root mounted
// shows uid=100000 for its host uid), and the runtime mounts inside the
// container's user namespace, where the kernel reads them as that
// namespace's IDs and refuses one it does not map (EINVAL); runc's own
// rootless spec drops them (specconv.ToRootless). Mapped back they keep
// the owner the box's mount had. An ID the maps lack stays as it is.
func boxIDOptions(opts []string, uidMap, gidMap []specs.LinuxIDMapping) []string {
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		prefix, m := "uid=", uidMap
		v, ok := strings.CutPrefix(o, prefix)
		if !ok {
			prefix, m = "gid=", gidMap
			v, ok = strings.CutPrefix(o, prefix)
		}
		if ok {
			if host, err := strconv.ParseUint(v, 10, 32); err == nil {
				if id, mapped := insideID(m, uint32(host)); mapped {
					o = prefix + strconv.FormatUint(uint64(id), 10)
				}
			}
		}
		out = append(out, o)
	}
	return out
}

// insideID is the ID a user namespace with mappings m gives host ID host.
func insideID(m []specs.LinuxIDMapping, host uint32) (uint32, bool) {
	for _, r := range m {
		if host >= r.HostID && uint64(host) < uint64(r.HostID)+uint64(r.Size) {
			return r.ContainerID + (host - r.HostID), true
		}
	}
	return 0, false
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

// ErrNoProc is returned for a box with no /proc mounted in its root.
var ErrNoProc = errors.New("the box has no /proc inside its root")

// WriteBundle writes dir/config.json and dir/rootfs, a copy of the box's
// merged root (the layers and the upper dir as the box sees them; other
// filesystems mounted in it are left out, config.json mounts them).
// dir must be new, or an empty directory of the caller's that no other
// user can write (outfile.Mkdir). It returns how many device nodes of
// the box's root it left out, and what of its tree it could not read
// ("" when nothing) (CopyTree). When it fails it removes what it wrote,
// and only that: rootfs/, and dir if it made it.
func WriteBundle(dir string, b Box) (devices int, skipped string, err error) {
	if b.Root == "" {
		return 0, "", fmt.Errorf("export bundle %s: %w: `mount overlay LAYER…` first", dir, ErrNoRoot)
	}
	if !slices.ContainsFunc(b.Mounts, func(m Mount) bool { return m.Type == "proc" && m.Target == "/proc" }) {
		return 0, "", fmt.Errorf("export bundle %s: %w: runc needs one to start the container, and a bundle that mounts one the box lacks would not be the box: "+
			"`pivot_root` mounts it in a box with its own PID namespace (`unshare pid` before), or `mount proc` once the overlay is the box's /", dir, ErrNoProc)
	}
	made, err := outfile.Mkdir(dir)
	if err != nil {
		return 0, "", fmt.Errorf("export bundle: %w", err)
	}
	defer func() {
		if err != nil && made {
			// rmdir(2): only an empty directory, never anything else.
			if rerr := unix.Rmdir(dir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("export bundle: remove %s, which it made: rmdir: %w", dir, rerr))
			}
		}
	}()
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, "", fmt.Errorf("export bundle: %w", err)
	}
	if len(des) > 0 {
		return 0, "", fmt.Errorf("export bundle %s: the directory is not empty: give a new or empty one", dir)
	}
	// Closed to others before anything is copied, opened to the bundle's
	// root group once all of it is there (Reach); a directory that was
	// there gets its mode back if the bundle fails.
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, "", fmt.Errorf("export bundle: %w", err)
	}
	defer d.Close()
	var was unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &was); err != nil {
		return 0, "", fmt.Errorf("export bundle: fstat %s: %w", dir, err)
	}
	if err := unix.Fchmod(int(d.Fd()), 0o700); err != nil {
		return 0, "", fmt.Errorf("export bundle: chmod %s 0700: %w", dir, err)
	}
	defer func() {
		if err != nil && !made {
			if rerr := errors.Join(unix.Fchown(int(d.Fd()), -1, int(was.Gid)), unix.Fchmod(int(d.Fd()), was.Mode&0o7777)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("export bundle: give %s its mode %04o back: %w", dir, was.Mode&0o7777, rerr))
			}
		}
	}()
	rootfs := filepath.Join(dir, "rootfs")
	// Made here, so that what is removed on failure is what this made:
	// mkdir(2) fails if anything took the name since the directory was
	// found empty (no other user can write it).
	if err := os.Mkdir(rootfs, 0o700); err != nil {
		return 0, "", fmt.Errorf("export bundle: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := onefs.RemoveAll(rootfs); rerr != nil {
				err = errors.Join(err, fmt.Errorf("export bundle: remove the rootfs it was writing: %w", rerr))
			}
		}
	}()
	devices, skipped, err = copyTree(b.Root, rootfs, true)
	if err != nil {
		return devices, "", fmt.Errorf("export bundle %s: copy the box's root %s: %w", dir, b.Root, err)
	}
	data, err := json.MarshalIndent(Spec(b), "", "  ")
	if err != nil {
		return 0, "", fmt.Errorf("export bundle: %w", err)
	}
	if err := outfile.Write(filepath.Join(dir, "config.json"), append(data, '\n'), 0o600); err != nil {
		return devices, "", fmt.Errorf("export bundle: %w", err)
	}
	if gid, ok := rootGroup(b); ok {
		if err := unix.Fchown(int(d.Fd()), -1, gid); err != nil {
			return devices, "", fmt.Errorf("export bundle: chown %s to group %d: %w", dir, gid, err)
		}
		if err := unix.Fchmod(int(d.Fd()), 0o710); err != nil {
			return devices, "", fmt.Errorf("export bundle: chmod %s 0710: %w", dir, err)
		}
	}
	return devices, skipped, nil
}

// The bundle's directory is the caller's alone, as runc keeps its state
// directory and Docker its image roots (/var/lib/docker, 0700 or 0710):
// rootfs/ is the box's root as the box had it, set-user-ID and
// set-group-ID files kept, so that the container runc runs has them as
// the box did (su, ping). Host users must not reach them: in a box with
// a user namespace of its own they belong to the box's host IDs (running
// one makes anyone that uid: it signals the box's processes and writes
// its files), and a layer's may belong to host root; rootfs/ on the
// host's disk is not nosuid as the box's upper tmpfs is (ut29 F11). So
// the bits stay and others are kept out, rather than the bits dropped.
// In a user namespace runc's init opens rootfs/ as the mapped root, so
// the directory's group is that root's host group, with search only
// (0710), as Docker's userns-remap root is; the bundle is recorded
// against the box's ID block, which no later box is given while the
// bundle is there (primitives/idblock_bundle.go).

// rootGroup is the host gid the bundle's user namespace maps gid 0 to,
// when the bundle has a user namespace and maps it.
func rootGroup(b Box) (int, bool) {
	if !slices.Contains(b.Namespaces, "user") {
		return 0, false
	}
	return MappedRoot(b.GIDMap)
}

// MappedRoot is the host ID that mappings m give ID 0, if they map it.
func MappedRoot(m []specs.LinuxIDMapping) (int, bool) {
	for _, r := range m {
		if r.ContainerID == 0 && r.Size > 0 {
			return int(r.HostID), true
		}
	}
	return 0, false
}

// Reach says who may reach the bundle's directory WriteBundle wrote.
func Reach(b Box) string {
	if gid, ok := rootGroup(b); ok {
		return fmt.Sprintf("the bundle's directory is mode 0710, group %d (the box's root's host group: runc's init reaches rootfs/ as that root): no other user reaches rootfs/, whose set-user-ID files the box owns; no later box is given the box's host IDs while the bundle is there (delete it to free them)", gid)
	}
	return "the bundle's directory is mode 0700: no other user reaches rootfs/ and the set-user-ID files it keeps, as runc keeps its state"
}
