package repl

import "stepbox/primitives"

// A step's panel reads the kernel before it is drawn: every control file
// of stepbox's cgroup tree for the cgroup steps, each namespace for
// `unshare`, the layer and upper dirs for `mount overlay` (about 1 to 1.5
// ms each, a tenth of a `stepbox run` of the full container). Where the
// shell's output goes to the null device and nothing else reads it (no
// --record, no live view), nobody sees those panels: a step skips its own.
// Every other line is written as before, and the commands that are asked
// for a panel (ns, cgroup, stack) draw it whatever; a transcript through
// a terminal, a pipe or a file is unchanged.

// nullDevice says whether f is /dev/null.
var nullDevice = primitives.NullDevice

// stepPanelsUnseen says whether the panel a step draws under itself would
// be seen by no one (above).
func (sh *Shell) stepPanelsUnseen() bool {
	return sh.outNull && sh.web == nil && sh.watch().rec == nil
}
