package primitives

import (
	"slices"
	"strings"
	"testing"
)

// What stepbox says `enter` joins before it hands the learner's terminal
// over (EnterJoins) is what the entered command is in, read from the
// kernel: asked for uts alone in a box with a user namespace, every
// namespace of the box's own, and stepbox's tracking cgroup of the box.
func TestEnterJoinsNamesWhatTheEnteredCommandIsIn(t *testing.T) {
	needRoot(t)
	b := userBox(t, "ej")
	asked := mustTypes(t, "uts")
	names, cgroup := b.EnterJoins(asked)
	joined, in, _ := entered(t, b, asked)
	if !slices.Equal(names, joined) {
		t.Errorf("asked for uts, enter's command is in the box's %v namespaces; EnterJoins says %v", joined, names)
	}
	if tracked := b.Tracked(); tracked != nil && holds(tracked, in) != strings.Contains(cgroup, "stepbox's tracking cgroup "+tracked.Name) {
		t.Errorf("EnterJoins says the command is in %q; it is in stepbox's tracking cgroup %s: %v", cgroup, tracked.Name, holds(tracked, in))
	}
}
