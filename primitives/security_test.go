package primitives

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// statusOf runs grep in the box and returns the security lines of the
// command's own /proc/self/status: what the kernel gave it.
func statusOf(t *testing.T, b *Box) map[string]string {
	t.Helper()
	out := run(t, b, "grep", "-E", "^(Cap|NoNewPrivs|Seccomp)", "/proc/self/status")
	return parseStatus(out)
}

func parseStatus(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func mask(t *testing.T, status map[string]string, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(status[key], 16, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", key, status[key], err)
	}
	return v
}

// capshDecode asks libcap's capsh for the names of a mask: an
// independent decoder to check stepbox's table against.
func capshDecode(t *testing.T, m uint64) []string {
	t.Helper()
	out, err := exec.Command("capsh", "--decode="+strconv.FormatUint(m, 16)).Output()
	if err != nil {
		t.Skipf("capsh --decode: %v (libcap2-bin: .ci/deps.sh installs it)", err)
	}
	_, list, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	var names []string
	for _, n := range strings.Split(list, ",") {
		names = append(names, strings.ToUpper(n))
	}
	return names
}

func applySecurity(t *testing.T, b *Box, verb string, args ...string) {
	t.Helper()
	if _, err := b.ApplySecurity(verb, args); err != nil {
		t.Fatalf("%s %v: %v", verb, args, err)
	}
}

func TestCapsDockerGivesTheNextCommandDockersFourteen(t *testing.T) {
	needRoot(t)
	b, _, err := newTestSession(t).NewBox("capd", false)
	if err != nil {
		t.Fatal(err)
	}
	host, err := CapsOfPID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	before := statusOf(t, b)
	if mask(t, before, "CapEff") != host.Bounding {
		t.Fatalf("before the step CapEff = %s, want the host's bounding set %016x", before["CapEff"], host.Bounding)
	}
	applySecurity(t, b, "caps docker")
	st := statusOf(t, b)
	for _, k := range []string{"CapBnd", "CapPrm", "CapEff"} {
		if got := mask(t, st, k); got != DockerCaps {
			t.Errorf("%s = %016x %v, want Docker's %016x", k, got, DecodeCaps(got), DockerCaps)
		}
	}
	for _, k := range []string{"CapInh", "CapAmb"} {
		if got := mask(t, st, k); got != 0 {
			t.Errorf("%s = %016x, want none", k, got)
		}
	}
	if n := len(DecodeCaps(mask(t, st, "CapEff"))); n != 14 {
		t.Errorf("CapEff holds %d capabilities, want 14", n)
	}
	if got, want := strings.Join(capshDecode(t, mask(t, st, "CapEff")), " "), strings.Join(DecodeCaps(DockerCaps), " "); got != want {
		t.Errorf("capsh decodes CapEff as %s; stepbox's table says %s", got, want)
	}
	// The box process itself keeps everything: only its commands changed.
	if c, err := CapsOfPID(b.PID()); err != nil || c.Effective != host.Effective {
		t.Errorf("the box process's CapEff = %x (%v), want the host's %x", c.Effective, err, host.Effective)
	}
}

func TestCapsDropAndKeepChangeEverySet(t *testing.T) {
	needRoot(t)
	b, _, err := newTestSession(t).NewBox("capk", false)
	if err != nil {
		t.Fatal(err)
	}
	all := b.Security().Caps.Bounding
	applySecurity(t, b, "caps drop", "sys_admin", "CAP_NET_RAW")
	st := statusOf(t, b)
	want := all &^ CapMask("CAP_SYS_ADMIN", "CAP_NET_RAW")
	for _, k := range []string{"CapBnd", "CapPrm", "CapEff"} {
		if got := mask(t, st, k); got != want {
			t.Errorf("after caps drop: %s = %016x, want %016x", k, got, want)
		}
	}
	applySecurity(t, b, "caps keep", "chown", "kill")
	st = statusOf(t, b)
	want = CapMask("CAP_CHOWN", "CAP_KILL")
	for _, k := range []string{"CapBnd", "CapPrm", "CapEff"} {
		if got := mask(t, st, k); got != want {
			t.Errorf("after caps keep: %s = %016x %v, want %016x", k, got, DecodeCaps(got), want)
		}
	}
	if got := b.Security().Caps.Effective; got != want {
		t.Errorf("Security().Caps.Effective = %x, want %x", got, want)
	}
	// An empty set is reached by dropping, as docker run --cap-drop ALL.
	applySecurity(t, b, "caps drop", "ALL")
	st = statusOf(t, b)
	for _, k := range []string{"CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"} {
		if got := mask(t, st, k); got != 0 {
			t.Errorf("after caps drop ALL: %s = %016x, want none", k, got)
		}
	}
}

func TestBadSecurityInputChangesNothing(t *testing.T) {
	needRoot(t)
	b, _, err := newTestSession(t).NewBox("bad", false)
	if err != nil {
		t.Fatal(err)
	}
	all := b.Security().Caps.Bounding
	applySecurity(t, b, "caps drop", "net_raw")
	before := b.Security()
	for _, c := range []struct {
		verb string
		args []string
		want string
	}{
		{"caps drop", []string{"chown", "sys_admn"}, "did you mean CAP_SYS_ADMIN"},
		{"caps keep", nil, "empty set is refused"},
		{"caps drop", nil, "name the capabilities"},
		{"seccomp deny", []string{"mkdri"}, "did you mean mkdir"},
		{"seccomp deny", nil, "name the system calls"},
		{"seccomp deny", []string{"execve"}, "blocks execve"},
		{"seccomp deny", []string{"capset"}, "blocks capset"},
	} {
		_, err := b.ApplySecurity(c.verb, c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one saying %q", c.verb, c.args, err, c.want)
		}
		if !strings.HasPrefix(err.Error(), strings.Fields(c.verb)[0]) {
			t.Errorf("%s %v: error %q does not name the command", c.verb, c.args, err)
		}
	}
	// A capability the box process itself lacks cannot be kept.
	if missing := AllCaps() &^ all; missing != 0 {
		name := DecodeCaps(missing)[0]
		if _, err := b.ApplySecurity("caps keep", []string{name}); err == nil || !strings.Contains(err.Error(), "bounding set lacks it") {
			t.Errorf("caps keep %s, which the box process lacks: %v, want it refused", name, err)
		}
	}
	after := b.Security()
	if after.Caps != before.Caps || after.NoNewPrivs != before.NoNewPrivs || after.Seccomp.Source != before.Seccomp.Source {
		t.Errorf("bad input changed the settings: %+v, was %+v", after, before)
	}
	if st := statusOf(t, b); mask(t, st, "CapBnd") != all&^CapMask("CAP_NET_RAW") || st["Seccomp"] != "0" {
		t.Errorf("after bad input the next command has CapBnd %s, Seccomp %s", st["CapBnd"], st["Seccomp"])
	}
	// Under no_new_privs the filter goes in last: only execve follows it.
	applySecurity(t, b, "nnp")
	applySecurity(t, b, "seccomp deny", "capset")
	if _, err := b.ApplySecurity("nnp off", nil); err == nil || !strings.Contains(err.Error(), "blocks capset") {
		t.Errorf("nnp off under a filter denying capset: %v, want it refused", err)
	}
}

// A setuid-root program run by uid 1000 gains root, unless no_new_privs
// is set: then execve ignores the setuid bit.
func TestNoNewPrivsStopsASetuidBinary(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dir, err := os.MkdirTemp("", "stepbox-suid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	id, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "id")
	if err := os.WriteFile(suid, id, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	b, _, err := newTestSession(t).NewBox("nnp", false)
	if err != nil {
		t.Fatal(err)
	}
	euid := func() string {
		return strings.TrimSpace(run(t, b, "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--", suid, "-u"))
	}
	if got := euid(); got != "0" {
		t.Fatalf("without no_new_privs the setuid copy of id runs as euid %s, want 0 (is %s mounted nosuid?)", got, dir)
	}
	applySecurity(t, b, "nnp")
	if st := statusOf(t, b); st["NoNewPrivs"] != "1" {
		t.Errorf("after nnp the next command has NoNewPrivs %q, want 1", st["NoNewPrivs"])
	}
	if got := euid(); got != "1000" {
		t.Errorf("under no_new_privs the setuid copy of id runs as euid %s, want 1000", got)
	}
	applySecurity(t, b, "nnp off")
	if got := euid(); got != "0" {
		t.Errorf("after nnp off the setuid copy runs as euid %s, want 0 again", got)
	}
}

func TestSeccompDenyFailsTheCallWithEPERM(t *testing.T) {
	needRoot(t)
	b, _, err := newTestSession(t).NewBox("deny", false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run(t, b, "mkdir", filepath.Join(dir, "before"))
	applySecurity(t, b, "seccomp deny", "mkdir", "mkdirat")
	st := statusOf(t, b)
	if st["Seccomp"] != "2" || st["Seccomp_filters"] != "1" {
		t.Errorf("after seccomp deny the next command has Seccomp %q, Seccomp_filters %q; want 2 and 1", st["Seccomp"], st["Seccomp_filters"])
	}
	var out bytes.Buffer
	es, err := b.Exec(context.Background(), []string{"mkdir", filepath.Join(dir, "after")}, nil, Stdio{Out: &out, Err: &out})
	if err != nil {
		t.Fatal(err)
	}
	if es.Code == 0 || !strings.Contains(out.String(), "Operation not permitted") {
		t.Errorf("mkdir under the filter: exit %d, %q; want EPERM", es.Code, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "after")); err == nil {
		t.Errorf("mkdir under the filter made the directory")
	}
	applySecurity(t, b, "seccomp off")
	run(t, b, "mkdir", filepath.Join(dir, "after"))
	if st := statusOf(t, b); st["Seccomp"] != "0" {
		t.Errorf("after seccomp off: Seccomp %q, want 0", st["Seccomp"])
	}
}

// Docker's profile, reduced by Docker's capability set, refuses a user
// namespace (unshare needs CAP_SYS_ADMIN in the profile) and lets
// ordinary commands run.
func TestSeccompDockerBlocksUnshareWithoutSysAdmin(t *testing.T) {
	needRoot(t)
	b, _, err := newTestSession(t).NewBox("dock", false)
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, "unshare", "--user", "true")
	applySecurity(t, b, "seccomp docker")
	full := b.Security().Seccomp
	applySecurity(t, b, "caps docker")
	reduced := b.Security().Seccomp
	if len(reduced.Program) >= len(full.Program) {
		t.Errorf("the profile for Docker's 14 capabilities has %d instructions, for every capability %d: want fewer", len(reduced.Program), len(full.Program))
	}
	st := statusOf(t, b)
	if st["Seccomp"] != "2" || st["Seccomp_filters"] != "1" {
		t.Errorf("Seccomp %q, Seccomp_filters %q; want 2 and 1", st["Seccomp"], st["Seccomp_filters"])
	}
	var out bytes.Buffer
	es, err := b.Exec(context.Background(), []string{"unshare", "--user", "true"}, nil, Stdio{Out: &out, Err: &out})
	if err != nil {
		t.Fatal(err)
	}
	if es.Code == 0 || !strings.Contains(out.String(), "Operation not permitted") {
		t.Errorf("unshare --user under Docker's profile: exit %d, %q; want EPERM", es.Code, out.String())
	}
}

// What Docker's settings cost a command: `exec true` with none, and with
// Docker's 14 capabilities, no_new_privs and its seccomp profile (the
// executor's prctl, capset and seccomp calls before execve); and what
// building the profile's program costs the session.
func BenchmarkExecUnderDockerSecurity(b *testing.B) {
	rootForBench(b)
	s, _ := benchSession(b)
	for _, c := range []struct {
		name  string
		steps []string
	}{{"none", nil}, {"caps", []string{"caps docker"}}, {"seccomp", []string{"nnp", "seccomp docker"}}, {"docker", []string{"caps docker", "nnp", "seccomp docker"}}} {
		box, _, err := s.NewBox("bench-"+c.name, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range c.steps {
			if _, err := box.ApplySecurity(v, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				es, err := box.Exec(context.Background(), []string{"true"}, nil, Stdio{Out: io.Discard, Err: io.Discard})
				if err != nil || es.Code != 0 {
					b.Fatalf("exec true: %v %+v", err, es)
				}
			}
		})
	}
}

func BenchmarkBuildDockerSeccompProgram(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, err := dockerSeccomp(DockerCaps)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(f.Program)), "instructions")
	}
}
