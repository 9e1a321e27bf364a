package repl

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Rootless, a command run with exec while the box still shares a
// namespace or the root with the host is refused by the kernel there and
// says only "Permission denied": stepbox adds which step the box lacks,
// read from the box's state. What it makes in the host's IPC namespace
// is the host's, and stepbox says so with the object the kernel lists.
func TestRootlessExecRefusedByTheHostSaysWhichStepIsMissing(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	state := rootlessStateDir(t)
	script := strings.Join([]string{
		"new web",
		// -f: in the foreground, and on loopback, ended after a second
		// should the kernel ever let it bind.
		"-exec timeout 1 busybox httpd -f -p 127.0.0.1:80",
		"-exec mount -t tmpfs scratch /mnt",
		"-exec ls /root", // root's, 0700: read only
		"exec ipcmk -Q",
		"unshare ipc",
		"exec ipcmk -Q",
	}, "\n") + "\n"
	got, err := runRootless(t, state, script, "run", "-")
	m := regexp.MustCompile(`message queue (\d+) \(key 0x[0-9a-f]{8}\) is the host's`).FindStringSubmatch(got)
	if m != nil {
		t.Cleanup(func() { exec.Command("ipcrm", "-q", m[1]).Run() })
	}
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	for _, want := range []string{
		"httpd: bind: Permission denied",
		"why: a port below net.ipv4.ip_unprivileged_port_start",
		"do: `unshare net` first",
		"why: mount(2) needs CAP_SYS_ADMIN in the user namespace that owns the mount namespace; the box still shares the host's",
		"do: `unshare mnt` first",
		"why: the box's / is still the host's (no pivot_root or chroot yet)",
	} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
			t.Errorf("the output does not say %q:\n%s", want, got)
		}
	}
	if m == nil {
		t.Fatalf("exec ipcmk -Q in the host's IPC namespace is not said to be the host's:\n%s", got)
	}
	// The kernel lists it in the host's IPC namespace, made by uid 65534.
	data, err := os.ReadFile("/proc/sysvipc/msg")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*-?\d+\s+` + m[1] + `\s.*\s65534\s+65534\s+\S+\s+\S+\s+\S+$`).Match(data) {
		t.Errorf("queue %s is not in the host's /proc/sysvipc/msg as uid 65534's:\n%s", m[1], data)
	}
	if n := strings.Count(got, "is the host's, seen by every process there"); n != 1 {
		t.Errorf("the queue made after `unshare ipc` is said to be the host's too (%d notes):\n%s", n, got)
	}
	noSessionLeft(t, state)
}

// Rootless, `image load` writes every file of a layer but can give none
// another owner: it says the owners were not kept, never that entries
// were skipped, and the files are there.
func TestRootlessImageLoadSaysOwnersWereNotKept(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	state := rootlessStateDir(t)
	archive := filepath.Join(state, "demo.tar")
	script := "image demo " + archive + "\nimage load " + archive + "\nnew a\nunshare mnt\nmount overlay stepbox/demo\npivot_root\nexec ls /bin/busybox\n"
	got, err := runRootless(t, state, script, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	flat := strings.Join(strings.Fields(got), " ")
	if strings.Contains(flat, "skipped") {
		t.Errorf("image load calls entries it wrote skipped:\n%s", got)
	}
	if !regexp.MustCompile(`every file is here, but the owners of \d+ entries \(such as \d+:\d+\) were not kept: rootless`).MatchString(flat) {
		t.Errorf("image load does not say the owners were not kept:\n%s", got)
	}
	if !strings.Contains(got, "\n/bin/busybox\n") {
		t.Errorf("the loaded image's files are not in the box:\n%s", got)
	}
	noSessionLeft(t, state)
}

// rootlessSays runs lines as a `run -` script as uid 65534, on a host
// left as it was, and fails the test for each of want its output (folded
// to single spaces) does not say.
func rootlessSays(t *testing.T, lines, want []string) {
	t.Helper()
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	got, err := runRootless(t, rootlessStateDir(t), strings.Join(lines, "\n")+"\n", "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	flat := strings.Join(strings.Fields(got), " ")
	for _, w := range want {
		if !strings.Contains(flat, w) {
			t.Errorf("the output does not say %q:\n%s", w, got)
		}
	}
}

// Rootless, the article's `nsenter -t PID -m -p -u` from the host is
// refused joining a namespace the box's user namespace owns: stepbox says
// why and gives the form that works, which does (ut26 F12).
func TestRootlessNsenterWithoutTheUserNamespaceSaysToJoinItToo(t *testing.T) {
	rootlessSays(t, []string{
		"new web",
		"unshare mnt uts pid",
		"hostname inside-web",
		"-!nsenter -t $BOX_PID -m -p -u /bin/sh -c hostname",
		"!nsenter -t $BOX_PID -U --preserve-credentials -m -p -u /bin/sh -c 'echo joined: $(hostname)'",
	}, []string{
		"nsenter: reassociate to namespace",
		"error: !nsenter: exit status 1",
		"why: setns(2) needs CAP_SYS_ADMIN in the user namespace that owns the namespace joined",
		"do: join the box's user namespace too, keeping your groups (a rootless box may not set them): `!nsenter -t $BOX_PID -U --preserve-credentials -m -p -u /bin/sh -c hostname`",
		"joined: inside-web",
	})
}

// Rootless, a step that is refused can still be studied (ut26 F14):
// explain shows its record where it can be planned (cgroup new), else
// what it asks of the kernel, and says why it is refused here.
func TestRootlessExplainOfARefusedStepShowsItAndWhyItIsRefused(t *testing.T) {
	lines := []string{"new web", "explain net bridge"}
	want := []string{
		"net bridge: the kernel: RTM_NEWLINK kind bridge",
		"rootless here, net bridge is refused: a bridge is a link in the host's network namespace",
	}
	// Where no user manager delegates a cgroup to the uid (this host, and
	// the VMs, which have none for 65534), the cgroup steps are refused.
	if _, err := os.Stat("/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service"); err != nil {
		lines = append(lines, "explain cgroup new", "explain cgroup limit memory 32M")
		want = append(want, "explain: cgroup new (a plan: nothing has run)", "rootless here, cgroup new is refused:",
			"cgroup limit memory 32M: the kernel: writes memory.max", "rootless here, cgroup limit is refused:")
	}
	rootlessSays(t, lines, want)
}

// Rootless, every box has a user namespace of its own, so a hole probe
// finds open there is not said to be closed by one (ut26 F16): PID 1's
// memory, readable by the box's root that owns its user namespace, is
// closed by caps docker, and the table says the user namespace is no help.
func TestRootlessProbeNamesNoUserNamespaceAsACloser(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	got, err := runRootless(t, rootlessStateDir(t), "new b\nunshare all\nmount overlay base\npivot_root\nprobe ptrace remount\n", "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	flat := strings.Join(strings.Fields(got), " ")
	if strings.Contains(flat, "; a user namespace") {
		t.Errorf("a hole open in the box's user namespace is said to be closed by one:\n%s", got)
	}
	if strings.Contains(got, "│ ptrace            │ open") && !strings.Contains(flat, "(the box has a user namespace of its own already: that does not close it)") {
		t.Errorf("ptrace is open and the table does not say the box's user namespace does not close it:\n%s", got)
	}
}
