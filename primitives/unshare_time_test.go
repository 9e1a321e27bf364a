package primitives

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// When the offsets of a new time namespace are refused after its
// unshare(2) (checkTimeOffsets leaves only the clock's advance past its
// bound to get there), the box goes back to the time namespace it had:
// its executor, which unshare left in the old one, joins it again
// (setns(2)). A box in a user namespace of its own may not join the
// host's time namespace: it keeps the new one, and the error says so, as
// one that marks the namespace as the box's (ut29 F12).
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
		if err := x.Unshare(unix.CLONE_NEWTIME); err != nil {
			b.mu.Unlock()
			t.Fatalf("box %s: unshare(CLONE_NEWTIME): %v", name, err)
		}
		made := nsInode(t, x.pid, "time_for_children")
		st := &step.Step{}
		err = b.undoTimeNamespace(x, st, errors.New("write refused"))
		b.mu.Unlock()
		after := nsInode(t, x.pid, "time_for_children")
		var kept *namespaceKept
		switch {
		case made == before:
			t.Fatalf("box %s: unshare(CLONE_NEWTIME) made no namespace (%d)", name, made)
		case !user && (after != before || errors.As(err, &kept) || !strings.Contains(err.Error(), "write refused; box plain is back in the time namespace it had")):
			t.Errorf("box plain: time_for_children %d, was %d before unshare: %v", after, before, err)
		case user && (after != made || !errors.As(err, &kept) || !strings.Contains(err.Error(), "it keeps the new one, with its clocks unshifted")):
			t.Errorf("box userns: time_for_children %d, %d made by unshare: %v", after, made, err)
		}
		if len(st.Calls) != 1 || !strings.HasPrefix(st.Calls[0].Syscall, "setns(") {
			t.Errorf("box %s: the step's record of the undo: %+v", name, st.Calls)
		}
	}
}
