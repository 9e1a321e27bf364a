package export

import (
	"errors"
	"golang.org/x/sys/unix"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
