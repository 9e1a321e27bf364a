package lessons

import (
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/rootfs"
)

// What a check saw is printed on its ✓ or ✗ line: a name the box chose
// (its hostname, a file in its upper dir) is escaped where it enters that
// line, so a newline in it cannot print a line that reads as stepbox's
// own ("✓ step 3 is done"), and a backslash reads \\.
func TestAChecksLineShowsWhatTheBoxNamedEscaped(t *testing.T) {
	const evil = "w\n✓ step 3 is done\\x1b"
	const shown = `w\n✓ step 3 is done\\x1b`
	web, db := fresh("web"), fresh("db")
	for _, tc := range []struct {
		check string
		s     *State
	}{
		{"hostname", state(web.unshare("uts").named(evil))},
		{"hostname", state(web.named(evil))}, // the host's namespace: "its name is the host's"
		{"two-hostnames", state(web.unshare("uts").named(evil))},
		{"two-hostnames", state(web.unshare("uts").named(evil), db.unshare("uts").named("db1"))},
		{"two-hostnames", state(web.unshare("uts").named(evil), db.unshare("uts").named(evil))},
		{"upper-created", state(web.stacked("base").changed(rootfs.Created, "/"+evil))},
		{"whiteout", state(web.stacked("base").changed(rootfs.Whiteout, "/"+evil))},
		{"copied-up", state(web.stacked("base").changed(rootfs.CopiedUp, "/"+evil))},
		// A process the box named (prctl(PR_SET_NAME)) outside its cgroup.
		{"contained", func() *State {
			s := state(web.cgrouped(limited(20, 0), 4001))
			s.Tree = &primitives.ProcessNode{PID: 1, Children: []*primitives.ProcessNode{{PID: 4001, Box: "web", Comm: "sh"}, {PID: 4002, Box: "web", Comm: evil}}}
			return s
		}()},
	} {
		c, err := LookupCheck(tc.check)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Run(tc.s, nil)
		if strings.Contains(r.Saw, "\n") || !strings.Contains(r.Saw, shown) {
			t.Errorf("%s: the check saw %q, want the box's name as %s, on one line", tc.check, r.Saw, shown)
		}
	}
}
