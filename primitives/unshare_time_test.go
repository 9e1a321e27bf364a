package primitives

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// When the offsets of a new time namespace are refused after its
// unshare(2) (checkTimeOffsets leaves only the clock's advance past its
// bound to get there), the box goes back to the time namespace it had:
// its executor, which unshare left in the old one, joins it again
// (setns(2)), held open since before the unshare. A box in a user
// namespace of its own may not join the host's time namespace: it keeps
// the new one, and the error says so, as one that marks the namespace as
// the box's (ut29 F12).
func TestARefusedTimeNamespaceIsUndoneOrKept(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	for _, user := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "userns"}[user]
		b, _, err := s.NewBox(name, user)
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		x := b.active()
		before := nsInode(t, x.pid, "time_for_children")
		old, err := os.Open(x.Proc() + "/ns/time_for_children")
		if err != nil {
			b.mu.Unlock()
			t.Fatal(err)
		}
		if err := x.Unshare(unix.CLONE_NEWTIME); err != nil {
			b.mu.Unlock()
			t.Fatalf("box %s: unshare(CLONE_NEWTIME): %v", name, err)
		}
		made := nsInode(t, x.pid, "time_for_children")
		st := &step.Step{}
		timeNS, _ := LookupNamespace("time")
		err = b.undoUnshare(x, st, timeNS, old, errors.New("write refused"))
		old.Close()
		b.mu.Unlock()
		after := nsInode(t, x.pid, "time_for_children")
		var kept *namespaceKept
		switch {
		case made == before:
			t.Fatalf("box %s: unshare(CLONE_NEWTIME) made no namespace (%d)", name, made)
		case !user && (after != before || errors.As(err, &kept) || !strings.Contains(err.Error(), "write refused; box plain is back in the time namespace it had")):
			t.Errorf("box plain: time_for_children %d, was %d before unshare: %v", after, before, err)
		case user && (after != made || !errors.As(err, &kept) || !strings.Contains(err.Error(), "box userns keeps the new time namespace, with its clocks unshifted, as the kernel refused the way back (setns(2) into the time namespace it had: EPERM")):
			t.Errorf("box userns: time_for_children %d, %d made by unshare: %v", after, made, err)
		}
		if len(st.Calls) != 1 || !strings.HasPrefix(st.Calls[0].Syscall, "setns(") {
			t.Errorf("box %s: the step's record of the undo: %+v", name, st.Calls)
		}
	}
}

// The same undo for the types whose follow-up runs in the executor's own
// new namespace (mnt's make-rslave, net's lo up): a plain box goes back
// to the namespace it had, and to its working directory (setns(2) into
// a mount namespace moves the caller to its root); a box in a user
// namespace of its own keeps a new network namespace, and the error says
// so, but a mount namespace that could not be made a slave still
// propagates mounts to the host's: that box is marked broken, and takes
// no more steps.
func TestARefusedFollowUpIsUndoneKeptOrMarkedBroken(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	for _, tc := range []struct {
		box, ns string
		user    bool
		want    string
		kept    bool
	}{
		{"plain", "net", false, "refused; box plain is back in the net namespace it had", false},
		{"plain", "mnt", false, "refused; box plain is back in the mnt namespace it had", false},
		{"usernet", "net", true, "refused; box usernet keeps the new net namespace, with lo down", true},
		{"usermnt", "mnt", true, "box usermnt is broken: a failed `unshare mnt` left its box process in a mount namespace whose mounts still propagate to the host's", true},
	} {
		b, err := s.Box(tc.box)
		if err != nil {
			if b, _, err = s.NewBox(tc.box, tc.user); err != nil {
				t.Fatal(err)
			}
		}
		typ, _ := LookupNamespace(tc.ns)
		b.mu.Lock()
		x := b.active()
		if !tc.user && tc.ns == "mnt" && x.Chdir("/tmp") != nil {
			t.Fatal("chdir /tmp in the box")
		}
		cwd, _ := os.Readlink(x.Proc() + "/cwd")
		before := nsInode(t, x.pid, tc.ns)
		old, err := os.Open(x.Proc() + "/ns/" + tc.ns)
		if err == nil {
			err = x.Unshare(typ.Flag)
		}
		if err != nil {
			b.mu.Unlock()
			t.Fatalf("box %s: unshare %s: %v", tc.box, tc.ns, err)
		}
		made := nsInode(t, x.pid, tc.ns)
		err = b.undoUnshare(x, &step.Step{}, typ, old, errors.New("refused"))
		old.Close()
		after := nsInode(t, x.pid, tc.ns)
		nowCwd, _ := os.Readlink(x.Proc() + "/cwd")
		dead := b.dead
		b.mu.Unlock()
		var kept *namespaceKept
		switch {
		case made == before:
			t.Errorf("box %s: unshare %s made no namespace", tc.box, tc.ns)
		case err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &kept) != tc.kept:
			t.Errorf("box %s, %s: %v, want an error saying %q (kept: %v)", tc.box, tc.ns, err, tc.want, tc.kept)
		case !tc.kept && (after != before || nowCwd != cwd):
			t.Errorf("box %s: %s namespace %d, cwd %s after the undo; %d, %s before", tc.box, tc.ns, after, nowCwd, before, cwd)
		case tc.kept && after != made:
			t.Errorf("box %s: %s namespace %d after the undo refused, %d made", tc.box, tc.ns, after, made)
		case (dead != nil) != (tc.ns == "mnt" && tc.user):
			t.Errorf("box %s, %s: marked broken: %v", tc.box, tc.ns, dead)
		}
	}
}
