package primitives

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

func nsInode(t *testing.T, pid int, name string) uint32 {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	nss, err := p.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	return nss[name].Inode
}

func mustType(t *testing.T, name string) NamespaceType {
	t.Helper()
	nt, err := LookupNamespace(name)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

func run(t *testing.T, b *Box, argv ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	es, err := b.Exec(context.Background(), argv, nil, Stdio{Out: &out, Err: &errb})
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	if es.Code != 0 {
		t.Fatalf("exec %v: exit %d: %s", argv, es.Code, errb.String())
	}
	return out.String()
}

// Each type: the box's inode equals the host's before unshare and differs
// after, read where the kernel shows it (the box process, or its children
// for pid and time).
func TestUnshareGivesEachTypeANewInode(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	for _, typ := range []string{"uts", "ipc", "net", "mnt", "cgroup", "time", "pid"} {
		t.Run(typ, func(t *testing.T) {
			b, _, err := s.NewBox("b"+typ, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Remove(b.Name)
			row := typ
			if typ == "pid" || typ == "time" {
				row = typ + "_for_children"
			}
			host := nsInode(t, os.Getpid(), row)
			if got := nsInode(t, b.PID(), row); got != host {
				t.Fatalf("before unshare: box %s inode %d, host %d", row, got, host)
			}
			if _, err := b.Unshare([]NamespaceType{mustType(t, typ)}, UnshareOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := nsInode(t, b.PID(), row); got == host {
				t.Fatalf("after unshare %s: box %s inode is still the host's (%d)", typ, row, got)
			}
			// Cross-check with lsns, which nobody here wrote.
			out, err := exec.Command("lsns", "-n", "-r", "-o", "NS,TYPE", "-p", strconv.Itoa(b.CommandPID())).Output()
			if err != nil {
				t.Fatalf("lsns: %v", err)
			}
			want := fmt.Sprintf("%d %s", nsInode(t, b.CommandPID(), typ), lsnsType(typ))
			if !strings.Contains(string(out), want) {
				t.Fatalf("lsns -p %d does not list %q:\n%s", b.CommandPID(), want, out)
			}
			if _, err := b.Unshare([]NamespaceType{mustType(t, typ)}, UnshareOptions{}); err == nil {
				t.Fatalf("a second unshare %s was accepted", typ)
			}
			if typ == "net" {
				if out := run(t, b, "ip", "-o", "link"); !strings.Contains(out, "lo:") || !strings.Contains(out, ",UP") || strings.Count(out, "\n") != 1 {
					t.Fatalf("a new network namespace should hold only lo, up:\n%s", out)
				}
			}
		})
	}
}

func lsnsType(typ string) string {
	if typ == "mnt" {
		return "mnt"
	}
	return typ
}

func TestHostnameChangesOnlyTheBox(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	host, _ := os.Hostname()
	b, _, err := s.NewBox("web", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sethostname("web1"); err == nil {
		t.Fatal("sethostname without a UTS namespace of its own was allowed: it would rename the host")
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sethostname("web1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, b, "hostname")); got != "web1" {
		t.Fatalf("hostname inside: %q", got)
	}
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("the host's hostname changed to %q", now)
	}
	// The article's command, from the host.
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(b.CommandPID()), "-u", "/bin/sh", "-c", "hostname").Output()
	if err != nil || strings.TrimSpace(string(out)) != "web1" {
		t.Fatalf("nsenter -u hostname: %q, %v", out, err)
	}
}

func TestPIDNamespaceHasALivingInit(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("p", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid"), mustType(t, "mnt")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if b.InitPID() == 0 {
		t.Fatal("no PID 1 after unshare pid")
	}
	st, err := procfs.NewProc(b.InitPID())
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	if n := status.NSpids; len(n) != 2 || n[1] != 1 {
		t.Fatalf("PID 1's NSpid = %v, want [host 1]", n)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(run(t, b, "sh", "-c", "echo $$")))
	if err != nil || pid <= 1 || pid > 100 {
		t.Fatalf("a command's PID inside the box is %d (%v), want a small number > 1", pid, err)
	}
	// Orphans re-parent to PID 1, which reaps them: no zombie remains.
	run(t, b, "sh", "-c", "sleep 0.2 & exit 0")
	time.Sleep(600 * time.Millisecond)
	for _, c := range children(t, b.InitPID()) {
		if c.State == "Z" {
			t.Fatalf("zombie %d under PID 1", c.PID)
		}
	}
	// Later steps run from PID 1: a namespace unshared now is PID 1's.
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if nsInode(t, b.InitPID(), "uts") == nsInode(t, os.Getpid(), "uts") {
		t.Fatal("unshare uts after pid did not reach PID 1")
	}
}

func children(t *testing.T, ppid int) []procfs.ProcStat {
	procs, err := procfs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	var out []procfs.ProcStat
	for _, p := range procs {
		if st, err := p.Stat(); err == nil && st.PPID == ppid {
			out = append(out, st)
		}
	}
	return out
}

func TestTimeNamespaceShiftsUptime(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("t", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "time")}, UnshareOptions{Boottime: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	inside := uptime(t, run(t, b, "cat", "/proc/uptime"))
	host, _ := os.ReadFile("/proc/uptime")
	if d := inside - uptime(t, string(host)); d < 48*3600-60 || d > 48*3600+60 {
		t.Fatalf("uptime inside minus host = %.0fs, want about %d", d, 48*3600)
	}
}

func uptime(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.Fields(s)[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUserNamespaceMapsRootToTheCallerOrAsRootToABlockOfItsOwn(t *testing.T) {
	s := newTestSession(t)
	b, _, err := s.NewBox("u", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, b, "id", "-u")); got != "0" {
		t.Fatalf("id -u inside a --user box: %q", got)
	}
	uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", b.PID()))
	// As root, its own block of host IDs, never host root (ut27 F3).
	want := fmt.Sprintf("0 %d 1", os.Getuid())
	if os.Getuid() == 0 {
		want = b.ids.uid.String()
		if b.ids.uid.Outside == 0 || b.ids.uid.Count != idBlock {
			t.Fatalf("the box's block is %v", b.ids.uid)
		}
	}
	if strings.Join(strings.Fields(string(uidMap)), " ") != want {
		t.Fatalf("uid_map %q, want %q", uidMap, want)
	}
	// The box can now make the rest of its namespaces without host root.
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts"), mustType(t, "mnt"), mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sethostname("inside"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, b, "hostname")); got != "inside" {
		t.Fatalf("hostname: %q", got)
	}
}

func TestEnterJoinsTheBoxLikeNsenter(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("e", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts"), mustType(t, "mnt"), mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sethostname("entered"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	types := []NamespaceType{mustType(t, "mnt"), mustType(t, "pid"), mustType(t, "uts")}
	es, _, err := b.Enter(context.Background(), types, []string{"/bin/sh", "-c", "hostname; echo $$"}, Stdio{Out: &out, Err: os.Stderr})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter: %v %+v", err, es)
	}
	lines := strings.Fields(out.String())
	if len(lines) != 2 || lines[0] != "entered" {
		t.Fatalf("enter output %q", out.String())
	}
	if pid, _ := strconv.Atoi(lines[1]); pid <= 1 || pid > 100 {
		t.Fatalf("the entered shell's PID is %s: not inside the box's PID namespace", lines[1])
	}
}

func TestExecReportsExitStatusAndLeavesTheBoxUsable(t *testing.T) {
	s := newTestSession(t)
	b, _, err := s.NewBox("x", false)
	if err != nil {
		t.Fatal(err)
	}
	es, err := b.Exec(context.Background(), []string{"sh", "-c", "exit 7"}, nil, Stdio{})
	if err != nil || es.Code != 7 {
		t.Fatalf("exit 7: %+v %v", es, err)
	}
	if _, err := b.Exec(context.Background(), []string{"no-such-command"}, nil, Stdio{}); err == nil {
		t.Fatal("a missing command was not an error")
	}
	if got := strings.TrimSpace(run(t, b, "echo", "still here")); got != "still here" {
		t.Fatalf("after failures: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	es, err = b.Exec(ctx, []string{"sleep", "30"}, nil, Stdio{})
	if err != nil || es.Signal == "" {
		t.Fatalf("a cancelled sleep: %+v %v", es, err)
	}
}

func TestTeardownEndsEveryProcessOfTheBox(t *testing.T) {
	s := newTestSession(t)
	b, _, err := s.NewBox("k", false)
	if err != nil {
		t.Fatal(err)
	}
	// A daemon that escapes its parent: teardown must still find it.
	run(t, b, "sh", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null &")
	// While the daemon is inside execve its /proc/PID/environ, where the
	// marks are, reads empty; under emulation that takes a while.
	marked := markedProcesses(s.ID, "k")
	for deadline := time.Now().Add(10 * time.Second); len(marked) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		marked = markedProcesses(s.ID, "k")
	}
	if len(marked) < 2 {
		t.Fatalf("expected the box process and the daemon, found %v", marked)
	}
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	for _, p := range marked {
		// A zombie waiting for the host's init to reap it has ended.
		if st, err := procfs.NewProc(p.pid); err == nil {
			if s, err := st.Stat(); err == nil && s.Starttime == p.start && s.State != "Z" {
				t.Fatalf("process %d (%s) survived rm", p.pid, s.Comm)
			}
		}
	}
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Fatalf("the box's state dir survived: %v", err)
	}
}

// PID 1 asks the OOM killer to take it last; the commands it starts get
// the default, so at the box's memory limit they go before it. Where PID 1
// may not lower its score, its commands raise theirs.
func TestCommandsOfPID1AreNotSparedByTheOOMKiller(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("o", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	// Going last takes CAP_SYS_RESOURCE, which a sandboxed root may lack;
	// then the commands volunteer instead, at 1000.
	want, wantCommand := "0", "1000"
	if capable(t, unix.CAP_SYS_RESOURCE) {
		want, wantCommand = "-999", "0"
	}
	for range 2 { // and PID 1 is back at its own score between commands
		if got := strings.TrimSpace(run(t, b, "cat", "/proc/self/oom_score_adj")); got != wantCommand {
			t.Errorf("a command's oom_score_adj = %s, want %s", got, wantCommand)
		}
	}
	init, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", b.InitPID()))
	if err != nil || strings.TrimSpace(string(init)) != want {
		t.Errorf("PID 1's oom_score_adj = %q (%v), want %s", init, err, want)
	}
}

// capable tells whether this process has capability c in effect.
func capable(t *testing.T, c int) bool {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<c) != 0
		}
	}
	t.Fatal("/proc/self/status has no CapEff line")
	return false
}

func TestBadBoxNamesAreRefused(t *testing.T) {
	s := newTestSession(t)
	for _, name := range []string{"", "a/b", "a b", "../x", "-x", strings.Repeat("a", 40), "1abc"} {
		if _, _, err := s.NewBox(name, false); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("NewBox(%q): %v", name, err)
		}
	}
	if _, _, err := s.NewBox("dup", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.NewBox("dup", false); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second NewBox(dup): %v", err)
	}
	if err := s.Remove("nope"); err == nil || !strings.Contains(err.Error(), "dup") {
		t.Errorf("Remove(nope): %v", err)
	}
}

func TestAKilledBoxIsNoticedAndRemovable(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("gone", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("kill", "-9", strconv.Itoa(b.InitPID())).Run(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var noticed []error
	for len(noticed) == 0 && time.Now().Before(deadline) {
		noticed = s.Notice()
		time.Sleep(20 * time.Millisecond)
	}
	if len(noticed) != 1 || !strings.Contains(noticed[0].Error(), "PID 1") {
		t.Fatalf("Notice after kill -9 of PID 1: %v", noticed)
	}
	if len(s.Notice()) != 0 {
		t.Fatal("the same death was reported twice")
	}
	if _, err := b.Exec(context.Background(), []string{"true"}, nil, Stdio{}); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("exec in a dead box: %v", err)
	}
	if err := s.Remove("gone"); err != nil {
		t.Fatalf("rm of a dead box: %v", err)
	}
}
