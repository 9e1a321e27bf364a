package repl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"stepbox/lessons"
)

// Rootless mode: stepbox started by uid 65534 (no root, no capability)
// makes `new web` in a user namespace of the box's own without being
// asked, builds a root there up to pivot_root, overlay whiteouts
// included, refuses the host-side network step and (with no delegation
// for that uid) the cgroup step with why, and leaves nothing behind.
func TestRootlessModeBuildsInOwnUserNamespaceAndRefusesHostSteps(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	state := rootlessStateDir(t)
	// What the session reads on the host side goes to the output between
	// markers: the box's uid_map as the kernel holds it, whether its user
	// namespace is the host's, and the whiteout the kernel left in the
	// upper dir for a file deleted in the box.
	script := strings.Join([]string{
		"explain new web",
		"new web",
		"explain",
		"!echo uidmap: $(cat /proc/$BOX_PID/uid_map)",
		"!echo userns: $(readlink /proc/$BOX_PID/ns/user) host $(readlink /proc/self/ns/user)",
		"unshare all",
		"mount overlay base",
		"pivot_root",
		"exec rm /etc/motd",
		"!echo whiteout: $(stat -c '%F %t:%T' $BOX_UPPER/etc/motd)",
		"exec sh -c 'echo inside: $(id -u) $(cat /proc/self/uid_map)'",
		"hostname rootless-box",
		"enter -- sh -c 'echo entered: $(hostname) $(id -u)'",
		"-net bridge",
		"-cgroup new",
		"!echo after-refusals: $(ip -o link show type bridge | grep -c stepbox)",
	}, "\n") + "\n"
	got, err := runRootless(t, state, script, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	if !strings.Contains(got, "stepbox: rootless (uid 65534") {
		t.Errorf("start-up does not say stepbox runs rootless:\n%s", got)
	}
	// One mapping, the uid itself, as the kernel has it.
	if !regexp.MustCompile(`(?m)^uidmap: 0 65534 1$`).MatchString(got) {
		t.Errorf("the box's uid_map is not the single mapping 0 → 65534:\n%s", got)
	}
	m := regexp.MustCompile(`(?m)^userns: (\S+) host (\S+)$`).FindStringSubmatch(got)
	if m == nil || m[1] == m[2] {
		t.Errorf("`new web` did not give the box a user namespace of its own (%q):\n%s", m, got)
	}
	// enter joins the box's user namespace before the namespaces it owns:
	// rootless, the session holds no capability to join them from outside.
	if !strings.Contains(got, "entered: rootless-box 0") {
		t.Errorf("enter in a rootless box did not reach its uts namespace as its root:\n%s", got)
	}
	if !regexp.MustCompile(`(?m)^inside: 0 +0 +65534 +1$`).MatchString(got) {
		t.Errorf("inside the pivoted box, root is not uid 65534 outside:\n%s", got)
	}
	if !strings.Contains(got, "whiteout: character special file 0:0") {
		t.Errorf("deleting a file in the rootless overlay left no 0/0 whiteout in the upper dir:\n%s", got)
	}
	if !strings.Contains(got, "net bridge: refused rootless:") || !strings.Contains(got, "CAP_NET_ADMIN") {
		t.Errorf("net bridge was not refused with why:\n%s", got)
	}
	if !strings.Contains(got, "after-refusals: 0") {
		t.Errorf("a stepbox bridge exists after the refused step:\n%s", got)
	}
	// Where no user manager delegates a cgroup to the uid (this host, and
	// the VMs, which have none for 65534), the cgroup step is refused.
	if _, err := os.Stat("/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service"); err != nil {
		if !strings.Contains(got, "cgroup new: refused rootless: no cgroup is delegated to you") {
			t.Errorf("cgroup new was not refused with why:\n%s", got)
		}
	}
	if strings.Contains(got, "EACCES") {
		t.Errorf("a step failed with EACCES from deep down instead of a refusal:\n%s", got)
	}
	noSessionLeft(t, state)
}

// Rootless, `stepbox lesson check` runs every lesson: each passes, or
// lists the steps that cannot work rootless, each with its reason, and
// goes on past them: the steps after a refused one are checked too. None
// fails, the lines fold at words, and nothing is left.
func TestLessonCheckRootlessGoesOnPastRefusedStepsWithTheirReasons(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	state := rootlessStateDir(t)
	got, err := runRootlessWidth(t, state, "", 100, "lesson", "check")
	if err != nil {
		t.Fatalf("rootless lesson check: %v\n%s", err, got)
	}
	for _, l := range strings.Split(got, "\n") {
		if utf8.RuneCountInString(l) > 100 {
			t.Errorf("a line is wider than 100 columns: %q", l)
		}
	}
	// A lesson's verdict and the lines under it, unfolded.
	verdict := func(n int) string {
		m := regexp.MustCompile(fmt.Sprintf(`(?ms)^(ok|FAIL) +lesson %d · .*?(^\S|\z)`, n)).FindString(got)
		return strings.Join(strings.Fields(m), " ")
	}
	for _, l := range lessons.All() {
		v := verdict(l.Number)
		if !strings.HasPrefix(v, "ok ") {
			t.Errorf("lesson %d is not ok rootless: %s\n%s", l.Number, v, got)
			continue
		}
		if strings.Contains(v, "refused rootless: ") && !strings.Contains(v, "; do: ") && !strings.Contains(v, "needs root") {
			t.Errorf("lesson %d is refused without a reason and what to do: %s", l.Number, v)
		}
	}
	// Lesson 4's host-PID /proc step needs root; the steps after it, a
	// /proc of the box's own and then /dev and /sys, work rootless.
	if v := verdict(4); !strings.Contains(v, "passed: 1–3, 5, 6; refused rootless: 4 ") {
		t.Errorf("lesson 4 rootless does not go on past its refused step 4 to pass 5 and 6: %s", v)
	}
	// Lesson 2: the user step (8) needs root; the time step (7), after the
	// cgroup step that rootless may refuse, passes.
	if v := verdict(2); !regexp.MustCompile(`passed: 1–5, 7|passed: 1–7`).MatchString(v) || !strings.Contains(v, "step 8 (user: root inside") {
		t.Errorf("lesson 2 rootless does not check its steps past a refused one: %s", v)
	}
	// Every step passes or is refused with its own reason: lesson 9's
	// Docker's-default step needs the device rules of refused step 7.
	if strings.Contains(flat(got), "not checked") {
		t.Errorf("a step is neither passed nor refused rootless:\n%s", got)
	}
	if v := verdict(9); !strings.Contains(v, "step 8 (A cgroup namespace, and Docker's default): This step needs root") || !strings.Contains(v, "device rules") {
		t.Errorf("lesson 9's step 8 is not refused with its own reason: %s", v)
	}
	// The host-side bridge of lesson 7 is never rootless's to make.
	if v := verdict(7); !strings.Contains(v, "step 2 (A bridge on the host side): refused rootless: ") || !strings.Contains(v, "CAP_NET_ADMIN") {
		t.Errorf("lesson 7 is not refused at its host-side bridge: %s", v)
	}
	noSessionLeft(t, state)
}

// rootlessStateDir makes a state dir uid 65534 owns, 0700, under a parent
// no one else may write (stepbox refuses a state dir others could swap).
func rootlessStateDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed")
	}
	top, err := os.MkdirTemp("", "stepbox-rootless-mode-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(top, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return state
}

// runRootless runs stepbox as uid 65534, without any capability, with
// script on stdin and its output returned.
func runRootless(t *testing.T, state, script string, args ...string) (string, error) {
	t.Helper()
	return runRootlessWidth(t, state, script, 300, args...)
}

// runRootlessWidth is runRootless with output laid out for width columns.
func runRootlessWidth(t *testing.T, state, script string, width int, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"env", "HOME=" + filepath.Dir(state), "XDG_RUNTIME_DIR=", fmt.Sprintf("COLUMNS=%d", width),
		stepboxBinary(t), "--plain", "--state-dir", state}, args...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// noSessionLeft fails when a session's runtime state is left in state
// (hostUnchanged checks mounts, links, cgroups and processes).
func noSessionLeft(t *testing.T, state string) {
	t.Helper()
	sessions, err := os.ReadDir(filepath.Join(state, "run", "sessions"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, s := range sessions {
		t.Errorf("session state left behind: %s", filepath.Join(state, "run", "sessions", s.Name()))
	}
}

// Rootless with a subordinate range for the uid (bind-mounted over
// /etc/subuid and /etc/subgid in a mount namespace of the test's own, so
// the host's files stay as they are): the box maps it through newuidmap,
// a file chowned to 1000 inside belongs to range start+999 outside, and
// teardown removes even a directory the box gave away.
func TestRootlessBoxMapsSubordinateRangeThroughNewuidmap(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, tool := range []string{"newuidmap", "newgidmap", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/deps.sh installs uidmap)", tool)
		}
	}
	state := rootlessStateDir(t)
	ids := filepath.Join(filepath.Dir(state), "subids")
	if err := os.WriteFile(ids, []byte("nobody:300000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"explain new web",
		"new web",
		"explain",
		"!echo uidmap: $(cat /proc/$BOX_PID/uid_map)",
		"!echo gidmap: $(cat /proc/$BOX_PID/gid_map)",
		"unshare mnt pid",
		"mount overlay base",
		"pivot_root",
		"exec sh -c 'mkdir /tmp/d && touch /tmp/d/x && chown -R 1000:1000 /tmp/d && chmod 700 /tmp/d'",
		"!echo owner: $(stat -c '%u:%g' $BOX_UPPER/tmp/d)",
	}, "\n") + "\n"
	// The bounding set stays full: newuidmap is set-user-ID root.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/subuid && mount --bind "$1" /etc/subgid && shift && exec "$@"`, "sh", ids,
		"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		"env", "HOME="+filepath.Dir(state), "XDG_RUNTIME_DIR=", "COLUMNS=300",
		stepboxBinary(t), "--plain", "--state-dir", state, "run", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	got := string(out)
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	if !strings.Contains(got, "ids: your subordinate range, through newuidmap") {
		t.Errorf("start-up does not say the range is mapped:\n%s", got)
	}
	for _, m := range []string{"uidmap", "gidmap"} {
		if !regexp.MustCompile(`(?m)^` + m + `: 0 65534 1 1 300000 65536$`).MatchString(got) {
			t.Errorf("the box's %s is not 0→65534 plus the range:\n%s", m, got)
		}
	}
	if !strings.Contains(got, "owner: 300999:300999") {
		t.Errorf("uid 1000 inside is not 300999 outside:\n%s", got)
	}
	// `explain new web` before, `explain` after: the same calls (the PID
	// aside) and man pages, newuidmap's among them.
	plan := explainedParts(got, "explain: new web   (a plan")
	rec := explainedParts(got[max(strings.Index(got, "✓ box web"), 0):], "explain: new web")
	if len(plan) == 0 || !slices.Equal(plan, rec) || !slices.Contains(plan, "    clone(2), execve(2), user_namespaces(7), newuidmap(1), subuid(5)") {
		t.Errorf("explain new web planned\n  %s\nand new web recorded\n  %s", strings.Join(plan, "\n  "), strings.Join(rec, "\n  "))
	}
	noSessionLeft(t, state)
}

// explainedParts are the syscalls (without their results, the box
// process's PID as PID) and the man pages of the explain block in out
// that starts with head.
func explainedParts(out, head string) []string {
	i := strings.Index(out, head)
	if i < 0 {
		return nil
	}
	var parts []string
	section := ""
	result := regexp.MustCompile(` = [^ ]+`)
	pid := regexp.MustCompile(`map [0-9]+ `)
	for _, line := range strings.Split(out[i:], "\n")[1:] {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		if !strings.HasPrefix(line, "    ") {
			section, _, _ = strings.Cut(strings.TrimSpace(line), " ")
			continue
		}
		if section == "syscalls" || section == "man" {
			parts = append(parts, pid.ReplaceAllString(result.ReplaceAllString(line, ""), "map PID "))
		}
	}
	return parts
}

// Rootless on a host that gives the uid no cgroup, a box's processes are
// found by the box's user namespace: one that made a user namespace of
// its own below the box's and cleared its environment (so no marker is
// left) is still the box's. `rm` ends it and names it, and never says
// "its processes ended" while one is alive (ut29 F13).
func TestRootlessRmEndsAProcessInAUserNamespaceNestedInTheBoxs(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	state := rootlessStateDir(t)
	arg := "782." + strconv.Itoa(os.Getpid())
	defer func() {
		for _, pid := range sleepers(t, arg) {
			syscall.Kill(pid, syscall.SIGKILL) // the test's own
		}
	}()
	script := strings.Join([]string{
		"new a",
		"exec sh -c '(env -i /usr/bin/unshare -U --map-root-user /usr/bin/setsid /bin/sleep " + arg + " </dev/null >/dev/null 2>&1 &); " +
			"timeout 5 sh -c \"until [ \\$(readlink /proc/\\$(pgrep -fx \\\"/bin/sleep " + arg + "\\\")/ns/user) != \\$(readlink /proc/self/ns/user) ]; do sleep 0.02; done\" 2>/dev/null; echo nested: $?'",
		"-rm a",
		"!echo after: $(pgrep -fx '/bin/sleep " + arg + "' | wc -l)",
	}, "\n") + "\n"
	got, err := runRootless(t, state, script, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	if !strings.Contains(got, "nested: 0") {
		t.Fatalf("the box's sleeper did not reach a user namespace of its own:\n%s", got)
	}
	if left := sleepers(t, arg); len(left) > 0 {
		t.Errorf("the sleeper in a user namespace nested in the box's survived rm (PIDs %v):\n%s", left, got)
	}
	if !strings.Contains(got, "after: 0") {
		t.Errorf("the host still saw the sleeper after rm:\n%s", got)
	}
	if !regexp.MustCompile(`ended PID [0-9]+ \("sleep", in a user namespace below the box's\) of box a`).MatchString(got) {
		t.Errorf("rm did not name the sleeper it ended and how it was told to be the box's:\n%s", got)
	}
	if strings.Contains(got, "its processes ended") && len(sleepers(t, arg)) > 0 {
		t.Errorf("rm said its processes ended while one was alive:\n%s", got)
	}
	noSessionLeft(t, state)
}
