package repl

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A box built step by step, exported as a bundle and run by Debian's
// runc: the container has the box's namespace types, hostname, pids and
// memory limits and capability sets.
func TestExportBundleRunsInRuncAsTheBoxWasBuilt(t *testing.T) {
	needRoot(t)
	runc := needRunc(t)
	hostUnchanged(t)
	undoRuncControllers(t)
	dir := t.TempDir()
	archive, bundle := filepath.Join(dir, "demo.tar"), filepath.Join(dir, "bundle")
	script := "image demo " + archive + "\nimage load " + archive + "\n" +
		"new a\nunshare uts ipc mnt pid\nhostname web\nmount overlay stepbox/demo\npivot_root\n" +
		"cgroup new\ncgroup limit pids 20\ncgroup limit memory 64M\ncgroup attach\n" +
		"!grep ^Cap /proc/$BOX_PID/status\nexport bundle " + bundle + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	boxCaps := regexp.MustCompile(`(?m)^(Cap\w+):\s+([0-9a-f]+)$`).FindAllStringSubmatch(out, -1)
	if len(boxCaps) != 5 {
		t.Fatalf("no capability sets of the box in:\n%s", out)
	}

	var spec specs.Spec
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spec.Process.Args, " "); got != "/app/hello.sh" || spec.Process.Cwd != "/app" {
		t.Errorf("process: %q in %q, want the image's Cmd in its WorkingDir", got, spec.Process.Cwd)
	}
	// Run it detached, so the host can read the container's /proc.
	pid := runcDetached(t, runc, dir, bundle, fmt.Sprintf("stepbox-test-%d", os.Getpid()), spec, "")

	for _, ns := range []string{"uts", "ipc", "mnt", "pid", "net", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		got, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		own := ns == "uts" || ns == "ipc" || ns == "mnt" || ns == "pid"
		if own != (got != host) {
			t.Errorf("namespace %s: container %s, host %s; the box had its own: %v", ns, got, host, own)
		}
	}
	if got, _ := exec.Command("nsenter", "-t", pid, "-u", "hostname").Output(); strings.TrimSpace(string(got)) != "web" {
		t.Errorf("hostname %q, want web", got)
	}
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, c := range boxCaps {
		if want := c[1] + ":\t" + c[2]; !strings.Contains(string(status), want) {
			t.Errorf("container lacks the box's %s", want)
		}
	}
	limits := map[string]string{"pids": "pids.max", "memory": "memory.limit_in_bytes"}
	want := map[string]string{"pids": "20", "memory": fmt.Sprint(64 << 20)}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		limits["memory"] = "memory.max"
	}
	cg, _ := os.ReadFile("/proc/" + pid + "/cgroup")
	for ctl, file := range limits {
		path := cgroupPath(string(cg), ctl)
		if path == "" {
			t.Errorf("no %s cgroup in:\n%s", ctl, cg)
			continue
		}
		got, err := os.ReadFile(path + "/" + file)
		if err != nil || strings.TrimSpace(string(got)) != want[ctl] {
			t.Errorf("%s/%s = %q, %v; want %s", path, file, got, err, want[ctl])
		}
	}
}

// cgroupPath is where process's cgroup of controller ctl lives, from
// its /proc/PID/cgroup, v1 or v2.
func cgroupPath(procCgroup, ctl string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				return "/sys/fs/cgroup" + f[2]
			}
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == ctl {
				return "/sys/fs/cgroup/" + ctl + f[2]
			}
		}
	}
	return ""
}

// The script `export script` writes, run by sh after stepbox has gone,
// builds a box with the same namespaces, hostname, root and pids limit,
// and runs the image's command in it.
func TestExportScriptRebuildsTheBoxWithStandardTools(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	archive, file := filepath.Join(dir, "demo.tar"), filepath.Join(dir, "box.sh")
	script := "image demo " + archive + "\nimage load " + archive + "\n" +
		"new a\nunshare uts ipc mnt pid\nhostname web\nmount overlay stepbox/demo\npivot_root\n" +
		"cgroup new\ncgroup limit pids 20\ncgroup attach\nexport script " + file + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	cg := fmt.Sprintf("stepbox-test-%d", os.Getpid())
	t.Cleanup(func() {
		for _, d := range []string{"/sys/fs/cgroup/" + cg, "/sys/fs/cgroup/pids/" + cg} {
			os.Remove(d)
		}
	})
	run := func(args ...string) string {
		cmd := exec.Command("sh", append([]string{file}, args...)...)
		cmd.Env = append(os.Environ(), "CG="+cg, "BOXDIR="+filepath.Join(dir, "box"))
		got, err := cmd.CombinedOutput()
		if err != nil {
			b, _ := os.ReadFile(file)
			t.Fatalf("sh %s: %v\n%s\nthe script:\n%s", file, err, got, b)
		}
		return string(got)
	}
	if got := run(); !strings.Contains(got, "hello from /app as uid 0") {
		t.Errorf("the image's Cmd printed %q", got)
	}
	// env -i: the image's Env and nothing of the host's.
	if got := strings.Fields(run("env")); !slices.Contains(got, "GREETING=hello") || slices.ContainsFunc(got, func(kv string) bool {
		return strings.HasPrefix(kv, "CG=") || strings.HasPrefix(kv, "BOXDIR=") || strings.HasPrefix(kv, "STEPBOX_") || strings.HasPrefix(kv, "GOPATH=")
	}) {
		t.Errorf("the box's environment is not the image's: %q", got)
	}
	got := run("sh", "-c", "hostname; echo pid=$$; for n in uts ipc mnt net; do readlink /proc/self/ns/$n; done; cat /etc/issue 2>&1; cat /proc/self/cgroup")
	for _, want := range []string{"web\n", "pid=1\n", "can't open '/etc/issue'", cg} {
		if !strings.Contains(got, want) {
			t.Errorf("inside the rebuilt box, output lacks %q:\n%s", want, got)
		}
	}
	for _, ns := range []string{"uts", "ipc", "mnt", "net"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if strings.Contains(got, host) == (ns != "net") {
			t.Errorf("namespace %s: host's is %s; inside:\n%s", ns, host, got)
		}
	}
	path := cgroupPath(got, "pids")
	if path == "" {
		path = cgroupPath(got, "")
	}
	if limit, err := os.ReadFile(path + "/pids.max"); err != nil || strings.TrimSpace(string(limit)) != "20" {
		t.Errorf("%s/pids.max = %q, %v; want 20", path, limit, err)
	}
}

// The box's security steps travel in the bundle: runc gives the
// container the capabilities, no_new_privs and seccomp filter the box's
// commands get.
func TestExportBundleCarriesTheSecurityStepsToRunc(t *testing.T) {
	needRoot(t)
	runc := needRunc(t)
	hostUnchanged(t)
	undoRuncControllers(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	script := "new a\nunshare uts ipc mnt pid\nmount overlay base\npivot_root\n" +
		"caps docker\nnnp\nseccomp docker\nexport bundle " + bundle + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var spec specs.Spec
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	pid := runcDetached(t, runc, dir, bundle, fmt.Sprintf("stepbox-sec-%d", os.Getpid()), spec, "")
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the container runc started lacks %q:\n%s", want, status)
		}
	}
}

// A volume (`mount bind DIR PATH:ro`) and `mount mask` reach the bundle:
// the bind mount with its host directory, read-only, and Docker's masked
// and read-only paths; runc's container reads the volume and cannot
// write it.
func TestExportBundleCarriesVolumesAndMasksToRunc(t *testing.T) {
	needRoot(t)
	runc := needRunc(t)
	hostUnchanged(t)
	undoRuncControllers(t)
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "hello"), []byte("from the volume\n"), 0o644)
	bundle := filepath.Join(dir, "bundle")
	script := "new a\nunshare uts ipc mnt pid\nmount overlay base\nmount bind " + vol + " /data:ro\npivot_root\nmount dev\nmount mask\nexport bundle " + bundle + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var spec specs.Spec
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/data" })
	if i < 0 || spec.Mounts[i].Source != vol || !slices.Contains(spec.Mounts[i].Options, "rbind") || !slices.Contains(spec.Mounts[i].Options, "ro") {
		t.Fatalf("config.json's mounts %+v: want /data bound from %s, rbind and ro", spec.Mounts, vol)
	}
	if !slices.Contains(spec.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(spec.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("maskedPaths %v, readonlyPaths %v: want Docker's", spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
	for _, m := range spec.Mounts {
		if strings.HasPrefix(m.Destination, "/proc/") {
			t.Errorf("mount mask's %s is exported as a mount of its own: %+v", m.Destination, m)
		}
	}
	spec.Process.Args = []string{"sh", "-c", "cat /data/hello; touch /data/new || echo read-only"}
	spec.Process.Terminal = false
	b, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
	id := fmt.Sprintf("stepbox-vol-%d", os.Getpid())
	cmd := exec.Command(runc, "--root", filepath.Join(dir, "runc"), "run", "-b", bundle, id)
	got, err := cmd.CombinedOutput()
	exec.Command(runc, "--root", filepath.Join(dir, "runc"), "delete", "-f", id).Run()
	if err != nil || !strings.Contains(string(got), "from the volume") || !strings.Contains(string(got), "read-only") {
		t.Errorf("runc run: %v\n%s", err, got)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); err == nil {
		t.Errorf("the container wrote into the read-only volume")
	}
}

// runcDetached starts the bundle's config, spec with sleep 60 for its
// command, under runc run -d with its state in dir, and returns the
// container's PID; runc's container is killed and deleted at the end of
// the test. note is added to a failure of runc run (what the export said).
func runcDetached(t *testing.T, runc, dir, bundle, id string, spec specs.Spec, note string) string {
	t.Helper()
	spec.Process.Args = []string{"sleep", "60"}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "runc")
	pidFile := filepath.Join(dir, "pid")
	// Not a pipe: the detached container keeps its stdio open.
	logFile, err := os.Create(filepath.Join(dir, "runc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(runc, "--root", state, "run", "-d", "--pid-file", pidFile, "-b", bundle, id)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		exec.Command(runc, "--root", state, "delete", "-f", id).Run()
		t.Fatalf("runc run: %v\n%s%s", err, log, note)
	}
	t.Cleanup(func() {
		exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
		for i := 0; i < 50; i++ {
			if exec.Command(runc, "--root", state, "delete", id).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("runc delete %s failed", id)
	})
	pidText, _ := os.ReadFile(pidFile)
	return strings.TrimSpace(string(pidText))
}

// needRunc is the path of Debian's runc; without it the test skips, or
// fails where every integration test must run.
func needRunc(t *testing.T) string {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("runc is missing (.ci/deps.sh installs Debian's runc)")
		}
		t.Skip("needs runc")
	}
	return runc
}
