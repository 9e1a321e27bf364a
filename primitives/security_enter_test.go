package primitives

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The attack of issue 15: a box replaces its own /bin/hostname, and the
// learner types `enter -- hostname`. The planted program must run as the
// box's commands do: in its user namespace, its cgroup, with its
// capabilities and no_new_privs, never with the host's.
func TestEnterRunsAPlantedProgramWithTheBoxsIdentity(t *testing.T) {
	needRoot(t)
	s, stack := benchSession(t)
	b, _, err := s.NewBox("planted", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "mnt"), mustType(t, "pid"), mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Mount("proc", "", "/proc", false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CgroupNew(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CgroupAttach(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "user")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	applySecurity(t, b, "caps docker")
	applySecurity(t, b, "nnp")
	// What the box plants: a program the learner will run by its name.
	script := "#!/bin/sh\ngrep -E '^(CapEff|NoNewPrivs)' /proc/self/status\nreadlink /proc/self/ns/user\ncat /proc/self/cgroup\n"
	planted := filepath.Join(b.HostRoot(), "bin", "hostname")
	os.Remove(planted)
	if err := os.WriteFile(planted, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	types := []NamespaceType{mustType(t, "mnt"), mustType(t, "pid"), mustType(t, "uts")}
	es, st, err := b.Enter(context.Background(), types, []string{"hostname"}, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter -- hostname: %v %+v\n%s", err, es, out.String())
	}
	got := out.String()
	status := parseStatus(got)
	if m := mask(t, status, "CapEff"); m != DockerCaps {
		t.Errorf("the planted program ran with CapEff %016x %v, want the box's %016x", m, DecodeCaps(m), DockerCaps)
	}
	if status["NoNewPrivs"] != "1" {
		t.Errorf("the planted program ran with NoNewPrivs %q, want the box's 1", status["NoNewPrivs"])
	}
	if want := fmt.Sprintf("user:[%d]", nsInode(t, b.CommandPID(), "user")); !strings.Contains(got, want) {
		t.Errorf("the planted program is not in the box's user namespace %s:\n%s", want, got)
	}
	for _, d := range b.Cgroup().Dirs {
		if !strings.Contains(got, ":"+d.Hierarchy+":"+d.Cgroup+"\n") {
			t.Errorf("the planted program is not in the box's cgroup %s (%s):\n%s", d.Cgroup, d.Hierarchy, got)
		}
	}
	var calls []string
	for _, c := range st.Calls {
		calls = append(calls, c.Syscall)
		if c.Result != "0" {
			t.Errorf("record: %s", c)
		}
	}
	for _, want := range []string{"cgroup.procs", "CLONE_NEWUSER", "capset(", "PR_SET_NO_NEW_PRIVS"} {
		if !strings.Contains(strings.Join(calls, "\n"), want) {
			t.Errorf("enter's record lacks %s:\n%s", want, strings.Join(calls, "\n"))
		}
	}
}

// A box with no cgroup of the learner's is still in stepbox's own from
// `new` (box_track.go): what `enter` runs joins it too, in every
// hierarchy where the box's process is, so no limit or teardown misses it.
func TestEnterJoinsTheCgroupStepboxKeepsTheBoxIn(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("tracked", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := readProcCgroups(b.CommandPID())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	es, _, err := b.Enter(context.Background(), []NamespaceType{mustType(t, "uts")}, []string{"cat", "/proc/self/cgroup"}, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter -- cat /proc/self/cgroup: %v %+v\n%s", err, es, out.String())
	}
	for h, cg := range want {
		if !strings.Contains(out.String(), ":"+h+":"+cg+"\n") {
			t.Errorf("enter's command is not where the box is in hierarchy %q (%s):\n%s", h, cg, out.String())
		}
	}
}

// `enter` into a `new --user` box, whose user namespace denies
// setgroups: the host's supplementary groups are dropped before joining,
// so the command runs (it failed with setgroups EPERM) and holds none.
func TestEnterWorksInABoxMadeWithItsOwnUserNamespace(t *testing.T) {
	needRoot(t)
	s, _ := benchSession(t)
	b, _, err := s.NewBox("mapped", true)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	es, _, err := b.Enter(context.Background(), []NamespaceType{mustType(t, "uts")}, []string{"grep", "-E", "^(Uid|Groups):", "/proc/self/status"}, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter in a --user box: %v %+v\n%s", err, es, out.String())
	}
	status := parseStatus(out.String())
	if !strings.HasPrefix(status["Uid"], "0\t") || strings.TrimSpace(status["Groups"]) != "" {
		t.Errorf("enter's command in the box's user namespace: Uid %q, Groups %q; want root there and no supplementary groups", status["Uid"], status["Groups"])
	}
}
