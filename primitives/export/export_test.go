package export

import (
	"errors"
	"golang.org/x/sys/unix"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func sampleBox() Box {
	return Box{
		Name: "web", Namespaces: []string{"uts", "mnt", "pid"}, Hostname: "web1", Root: "/x",
		Layers: []string{"/l/base/root", "/l/app/root"},
		Mounts: []Mount{{Target: "/proc", Type: "proc", Source: "proc", Options: []string{"rw", "nosuid"}},
			{Target: "/data", Type: "bind", Source: "/srv/data", Options: []string{"ro"}}},
		MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"},
		Memory: 64 << 20, Pids: 20, CPUQuota: 50000, CPUPeriod: 100000,
		Caps:       Caps{Bounding: []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}, Effective: []string{"CAP_CHOWN"}},
		NoNewPrivs: true,
		Seccomp:    &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}},
		Args:       []string{"/app/run", "it's"}, Env: []string{"PATH=/bin", "A=b c"}, Cwd: "/app",
	}
}

func TestSpecCarriesTheBoxsNamespacesLimitsAndProcess(t *testing.T) {
	s := Spec(sampleBox())
	var types []string
	for _, ns := range s.Linux.Namespaces {
		types = append(types, string(ns.Type))
	}
	if got := strings.Join(types, " "); got != "uts mount pid" {
		t.Errorf("namespaces %q", got)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.Pids.Limit != 20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("resources %+v", r)
	}
	if s.Hostname != "web1" || s.Process.Cwd != "/app" || s.Root.Path != "rootfs" || s.Version != specs.Version {
		t.Errorf("spec %+v", s)
	}
	if got := strings.Join(s.Process.Capabilities.Bounding, " "); got != "CAP_CHOWN CAP_SYS_ADMIN" {
		t.Errorf("bounding set %q", got)
	}
	if !s.Process.NoNewPrivileges || s.Linux.Seccomp == nil || s.Linux.Seccomp.Syscalls[0].Names[0] != "mkdir" {
		t.Errorf("noNewPrivileges %v, seccomp %+v: want the box's", s.Process.NoNewPrivileges, s.Linux.Seccomp)
	}
}

func TestScriptIsValidShWithTheBoxsSteps(t *testing.T) {
	sc := Script(sampleBox())
	for _, want := range []string{
		"  env -i PATH=",
		"unshare --uts --mount --pid --fork --propagation slave sh",
		"only on this host, while that state dir holds them",
		"unset STEPBOX_SCRIPT_STAGE CG BOXDIR",
		"hostname web1",
		"'lowerdir=/l/app/root:/l/base/root'",
		"echo 20 > /sys/fs/cgroup/pids/$CG/pids.max",
		"echo '50000 100000' > /sys/fs/cgroup/$CG/cpu.max",
		"export A='b c'",
		`set -- /app/run "it's"`,
		"pivot_root . .",
		`mount --rbind /srv/data "$BOXDIR/merged"/data`,
		`mount -o remount,bind,ro "$BOXDIR/merged"/data`,
		`mount --bind /dev/null "$BOXDIR/merged"/proc/kcore`,
		`mount -o remount,bind,ro "$BOXDIR/merged"/proc/sys`,
		"setpriv --no-new-privs unshare",
		"# NOT carried: the box's seccomp filter;",
	} {
		if !strings.Contains(sc, want) {
			t.Errorf("script lacks %q:\n%s", want, sc)
		}
	}
	if out, err := exec.Command("sh", "-n", "-c", sc).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}

// An image's non-root User: the command is started from the host's side
// by nsenter, with the ids, into the namespaces a holder keeps; in a user
// namespace the script makes (root only mapped) or under chroot, not.
func TestScriptRunsANonRootUserThroughNsenter(t *testing.T) {
	b := sampleBox()
	b.UID, b.GID = 1000, 100
	sc := Script(b)
	for _, want := range []string{
		`"$nsenter" --target "$pid" --uts --mount --pid --root --wd --setgid 100 --setuid 1000 -- "$@"`,
		"setpriv --no-new-privs env -i PATH=/bin A='b c'",
		`read -r pid _ </proc/self/stat`,
		"trap 'exit 0' TERM",
	} {
		if !strings.Contains(sc, want) {
			t.Errorf("script lacks %q:\n%s", want, sc)
		}
	}
	if strings.Contains(sc, "runs as root") || strings.Contains(sc, "unset STEPBOX_SCRIPT_STAGE") {
		t.Errorf("the holder script runs the command itself:\n%s", sc)
	}
	if out, err := exec.Command("sh", "-n", "-c", sc).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
	b.Chroot = true
	if sc := Script(b); !strings.Contains(sc, "exec chroot --userspec=1000:100 --groups='' . /bin/sh") || strings.Contains(sc, `"$nsenter"`) {
		t.Errorf("chroot script:\n%s", sc)
	}
	b.Chroot = false
	b.Namespaces = append(b.Namespaces, "user")
	if sc := Script(b); !strings.Contains(sc, "maps only root (unshare --map-root-user): this runs as root") || strings.Contains(sc, `"$nsenter"`) {
		t.Errorf("user namespace script:\n%s", sc)
	}
}

func TestCopyTreeThroughASymlinkKeepsTheRootsModeAndOwner(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, 0, 0); err != nil {
		t.Fatal(err)
	}
	// As /proc/PID/root: a symlink to the box's root.
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "rootfs")
	if _, _, err := CopyTree(link, dst); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o755 || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 {
		t.Errorf("rootfs mode %o uid %d, want a directory 0755 owned by 0", st.Mode, st.Uid)
	}
}

func TestWriteBundleRefusesABoxWithoutProcAndWritesNothing(t *testing.T) {
	b := sampleBox()
	b.Root = t.TempDir()
	b.Mounts = nil
	dir := filepath.Join(t.TempDir(), "bundle")
	_, _, err := WriteBundle(dir, b)
	if !errors.Is(err, ErrNoProc) || !strings.Contains(err.Error(), "pivot_root") {
		t.Fatalf("WriteBundle of a box with no /proc: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was made: %v", dir, err)
	}
}

// A box with a user namespace of its own and no /dev mount: the bundle
// mounts a tmpfs at /dev, before any mount under it, where runc can bind
// the host's device nodes as the container's root; its mounts' uid= and
// gid= are the box's IDs, not the host's mountinfo shows. A box without
// one, or with a /dev of its own, keeps its mounts as they were.
func TestSpecOfAUserNamespaceBoxMountsADevTmpfsAndTheBoxsIDs(t *testing.T) {
	b := sampleBox()
	b.Namespaces = append(b.Namespaces, "user")
	b.UIDMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.GIDMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 10}, {ContainerID: 10, HostID: 300000, Size: 10}}
	b.Mounts = append(b.Mounts,
		Mount{Target: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "size=65536k", "uid=100000", "gid=300005", "mode=1777"}},
		Mount{Target: "/dev/mqueue", Type: "mqueue", Source: "mqueue"},
		Mount{Target: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"uid=7", "gid=100000"}})
	s := Spec(b)
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Destination+" "+m.Type+" "+strings.Join(m.Options, ","))
	}
	want := []string{
		"/proc proc rw,nosuid",
		"/data  rbind,ro",
		"/tmp tmpfs rw,size=65536k,uid=0,gid=15,mode=1777",
		"/dev tmpfs nosuid,strictatime,mode=755,size=65536k,nr_inodes=16384",
		"/dev/mqueue mqueue ",
		"/run tmpfs uid=7,gid=100000", // IDs the maps lack stay
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mounts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(DevNote(b), "tmpfs at /dev") {
		t.Errorf("DevNote %q: want why /dev is a tmpfs", DevNote(b))
	}

	b.Mounts = append(b.Mounts, Mount{Target: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=755", "uid=100000"}})
	s = Spec(b)
	if n := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev" }); n != len(s.Mounts)-1 || !slices.Contains(s.Mounts[n].Options, "uid=0") {
		t.Errorf("a box with its own /dev: mounts %+v, want its /dev alone, as uid 0", s.Mounts)
	}
	if DevNote(b) != "" {
		t.Errorf("DevNote of a box with its own /dev: %q", DevNote(b))
	}

	plain := sampleBox()
	plain.Mounts = append(plain.Mounts, Mount{Target: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"uid=100000"}})
	s = Spec(plain)
	if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev" }) || !slices.Contains(s.Mounts[len(s.Mounts)-1].Options, "uid=100000") || DevNote(plain) != "" {
		t.Errorf("a box without a user namespace: mounts %+v, note %q; want the box's as they were", s.Mounts, DevNote(plain))
	}
}
