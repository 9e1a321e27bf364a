package repl

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// userBundle builds a box with `new u --user`, the namespaces of
// TestExportBundleRunsInRuncAsTheBoxWasBuilt, a pids limit and then
// steps, exports it, and starts the bundle with runc run -d (sleep 60
// for its command). It returns the container's PID and what the box's
// /proc/PID/uid_map and gid_map said. runc's container is killed and
// deleted at the end of the test.
func userBundle(t *testing.T, steps string) (pid, uidMap, gidMap string) {
	t.Helper()
	needRoot(t)
	runc := needRunc(t)
	hostUnchanged(t)
	undoRuncControllers(t)
	// The box's root, a host uid of its own, mounts the overlay from the
	// state dir, and runc's init reaches the bundle's rootfs/ as it.
	dir := searchableTempDir(t)
	bundle := filepath.Join(dir, "bundle")
	script := "new u --user\nunshare uts ipc mnt pid\nhostname web\nmount overlay base\npivot_root\n" + steps +
		"cgroup new\ncgroup limit pids 20\ncgroup attach\n" +
		"!echo uid_map; cat /proc/$BOX_PID/uid_map; echo gid_map; cat /proc/$BOX_PID/gid_map; echo end\n" +
		"export bundle " + bundle + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	m := regexp.MustCompile(`(?s)\nuid_map\n(.*?)gid_map\n(.*?)end\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no uid_map and gid_map of the box in:\n%s", out)
	}
	uidMap, gidMap = m[1], m[2]

	var spec specs.Spec
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	pid = runcDetached(t, runc, dir, bundle, fmt.Sprintf("stepbox-user-%d", os.Getpid()), spec, "\nexport said:\n"+out)
	return pid, uidMap, gidMap
}

// A box made with `new --user`, exported and run by Debian's runc: the
// container has the box's user namespace mappings, its other namespace
// types and hostname, and the default devices, the host's nodes that
// runc binds in a user namespace (mknod(2) of a device is refused
// there): before, runc failed with "error creating device nodes", as
// the container's root may not create files in the layer's /dev.
func TestExportedUserBundleRunsInRuncAsTheBoxWasBuilt(t *testing.T) {
	pid, uidMap, gidMap := userBundle(t, "")
	for file, want := range map[string]string{"uid_map": uidMap, "gid_map": gidMap} {
		got, err := os.ReadFile("/proc/" + pid + "/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(strings.Fields(string(got)), " ") != strings.Join(strings.Fields(want), " ") {
			t.Errorf("the container's %s:\n%s\nthe box's:\n%s", file, got, want)
		}
	}
	for _, ns := range []string{"user", "uts", "ipc", "mnt", "pid", "net", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		got, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		own := ns != "net" && ns != "cgroup"
		if own != (got != host) {
			t.Errorf("namespace %s: container %s, host %s; the box had its own: %v", ns, got, host, own)
		}
	}
	if got, _ := exec.Command("nsenter", "-t", pid, "-u", "hostname").Output(); strings.TrimSpace(string(got)) != "web" {
		t.Errorf("hostname %q, want web", got)
	}
	// Its root is the box's: the host uid its user namespace maps 0 to.
	var root int
	fmt.Sscan(strings.Fields(uidMap)[1], &root)
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, root)).Match(status) {
		t.Errorf("the container's command does not run as host uid %d, the box's root:\n%s", root, status)
	}
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		var st unix.Stat_t
		p := "/proc/" + pid + "/root/dev/" + d.name
		if err := unix.Stat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != d.major || unix.Minor(st.Rdev) != d.minor {
			t.Errorf("%s: %+v, %v; want the character device %d:%d", p, st, err, d.major, d.minor)
		}
	}
	cg, _ := os.ReadFile("/proc/" + pid + "/cgroup")
	path := cgroupPath(string(cg), "pids")
	if limit, err := os.ReadFile(path + "/pids.max"); err != nil || strings.TrimSpace(string(limit)) != "20" {
		t.Errorf("%s/pids.max = %q, %v; want 20", path, limit, err)
	}
}

// The tmpfs mounts of a `new --user` box (`mount dev`, `mount tmpfs`)
// reach runc's container owned by the box's root: mountinfo shows their
// uid= and gid= as host IDs, which runc, mounting inside the container's
// user namespace, was refused (EINVAL); the bundle gives them in the
// box's IDs.
func TestExportedUserBundleMountsTheBoxsTmpfsAsItsRoot(t *testing.T) {
	pid, uidMap, _ := userBundle(t, "mount dev\nmount tmpfs /tmp\n")
	var root int
	fmt.Sscan(strings.Fields(uidMap)[1], &root)
	for _, p := range []string{"/dev", "/tmp"} {
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+pid+"/root"+p, &st); err != nil || int(st.Uid) != root {
			t.Errorf("the container's %s: %+v, %v; want owned by host uid %d, the box's root", p, st, err, root)
		}
	}
	mi, _ := os.ReadFile("/proc/" + pid + "/mountinfo")
	for _, p := range []string{"/dev", "/tmp"} {
		if !regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ ` + regexp.QuoteMeta(p) + ` .* - tmpfs `).Match(mi) {
			t.Errorf("no tmpfs at %s in the container's mountinfo:\n%s", p, mi)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/root/dev/null", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("the container's /dev/null: %+v, %v", st, err)
	}
}
