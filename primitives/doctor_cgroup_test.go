package primitives

import (
	"regexp"
	"strings"
	"testing"
)

// scopeName is a session's systemd scope: each open of the hierarchy
// names its own (…-2, -3 after the first), so two opens differ there.
var scopeName = regexp.MustCompile(`stepbox-[0-9]+-[0-9]+(-[0-9]+)?\.scope`)

// `stepbox doctor` says where the parent cgroup would go, by which rule
// and why, and on cgroup v2 what it would switch on above it, reading
// the same placement the session will use and changing nothing.
func TestDoctorSaysWhereTheCgroupParentGoes(t *testing.T) {
	needRoot(t)
	h, err := hostCgroups()
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Place("")
	if err != nil {
		t.Fatal(err)
	}
	mode, parent := checkCgroupMode(), checkCgroupParent()
	if !mode.OK || !strings.Contains(mode.Found, h.Mode().String()) {
		t.Errorf("cgroup mode check: %+v, want %s", mode, h.Mode())
	}
	want := []string{"under " + pl.Dirs[0].Cgroup, "rule " + pl.Rule, pl.Reason}
	if c := pl.HostChanges(); c != "" {
		want = append(want, c, "delegated scope", "session's lifetime")
	}
	found := scopeName.ReplaceAllString(parent.Found, "stepbox-SCOPE.scope")
	for _, w := range want {
		if w = scopeName.ReplaceAllString(w, "stepbox-SCOPE.scope"); !parent.OK || !strings.Contains(found, w) {
			t.Errorf("cgroup parent check: %+v, want %q in it", parent, w)
		}
	}
	if again, err := h.Place(""); err != nil || len(again.Enable) != len(pl.Enable) {
		t.Errorf("doctor changed what a session would switch on: %+v then %+v (%v)", pl.Enable, again.Enable, err)
	}
}
