package primitives

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// entered enters box b asking for the namespaces asked, and reads from
// the kernel what the command is in: the namespaces that are not the
// host's (by the links of /proc/PID/ns), in canonical order, and its
// cgroups (/proc/PID/cgroup). It returns the record Enter wrote.
func entered(t *testing.T, b *Box, asked []NamespaceType) (joined []string, in map[string]string, st *step.Step) {
	t.Helper()
	var script strings.Builder
	for _, nt := range NamespaceTypes {
		fmt.Fprintf(&script, "echo %s $(readlink /proc/$$/ns/%s); ", nt.Name, nt.Proc)
	}
	script.WriteString("cat /proc/$$/cgroup")
	var out, errb bytes.Buffer
	es, st, err := b.Enter(context.Background(), asked, []string{"/bin/sh", "-c", script.String()}, Stdio{Out: &out, Err: &errb})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter: %v, exit %d: %s", err, es.Code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < len(NamespaceTypes) {
		t.Fatalf("enter printed:\n%s", out.String())
	}
	for i, nt := range NamespaceTypes {
		host, err := os.Readlink("/proc/self/ns/" + nt.Proc)
		if err != nil {
			continue // a namespace type this kernel lacks
		}
		if f := strings.Fields(lines[i]); len(f) != 2 || f[0] != nt.Name {
			t.Fatalf("enter printed %q for %s:\n%s", lines[i], nt.Name, out.String())
		} else if f[1] != host {
			joined = append(joined, nt.Name)
		}
	}
	return joined, cgroupLines(strings.Join(lines[len(NamespaceTypes):], "\n")), st
}

// userBox is a box with a user, uts and ipc namespace of its own.
func userBox(t *testing.T, name string) *Box {
	t.Helper()
	s := newTestSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "user", "uts", "ipc"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// What `enter`'s record (and its plan, which `explain enter` prints) says
// it joins is what its command is in, read from the kernel: asked for uts
// alone, the box's user namespace and with it every namespace of the
// box's own, and the cgroups of the box's processes, stepbox's tracking
// cgroup here. It said "the namespaces of PID N", and "its cgroup" only
// of a box with a cgroup of its own.
func TestEnterRecordSaysEverythingItsCommandJoins(t *testing.T) {
	needRoot(t)
	b := userBox(t, "er")
	asked := mustTypes(t, "uts")
	plan, err := b.PlanEnter(asked, []string{"sh"})
	if err != nil {
		t.Fatal(err)
	}
	joined, in, st := entered(t, b, asked)
	if want := []string{"user", "uts", "ipc"}; !slices.Equal(joined, want) {
		t.Fatalf("asked for uts, enter's command is in the box's %v namespaces, want %v", joined, want)
	}
	tracked := b.Tracked()
	for _, sum := range []string{plan.Summary, st.Summary} {
		if !strings.Contains(sum, "user, uts, ipc namespaces") {
			t.Errorf("enter's record says %q: not the user, uts, ipc namespaces its command joins", sum)
		}
		if tracked != nil && holds(tracked, in) && !strings.Contains(sum, "stepbox's tracking cgroup "+tracked.Name) {
			t.Errorf("enter's record says %q: not stepbox's tracking cgroup %s its command is in", sum, tracked.Name)
		}
	}
}
