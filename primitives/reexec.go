package primitives

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"stepbox/primitives/probe"
)

// Hidden entry points of the stepbox binary. The first two never reach
// Go: the executor's constructor (executor.c) takes them over before the
// runtime starts, single-threaded. __probe is Go's: the escape probes,
// run inside a box (box_probe.go).
const (
	entryBox = "__box" // a box process: the C executor
	// entryBoxMapped: stepbox __boxmapped ENTRY ARGS… waits, rootless, in
	// a new user namespace for newuidmap, then executes itself again as
	// stepbox ENTRY ARGS… (executor.c, exec_mapped).
	entryBoxMapped = "__boxmapped"
	entryRemove    = "__rmtree" // removes a tree, as root of a mapped user namespace (rootless.go)
	entryEnter     = "__enter"  // joins a box's namespaces with setns(2), then runs a command
	entryProbe     = "__probe"  // the escape probes, inside a box
)

// Reexec runs a hidden entry point when os.Args names one, and never
// returns in that case. It returns false otherwise.
func Reexec() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case entryBox, entryBoxMapped, entryEnter:
		// Only a binary built without cgo gets here.
		fmt.Fprintf(os.Stderr, "stepbox %s: this binary has no executor: build it with cgo (CGO_ENABLED=1, gcc)\n", os.Args[1])
		os.Exit(2)
	case entryProbe:
		// executor.c made it non-dumpable before the runtime started
		// (stepbox_probe); said again should a binary reach here without
		// that constructor: a probe a box process traces reports what the
		// tracer wants (ut31 F3).
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "stepbox %s: prctl(PR_SET_DUMPABLE, 0): %v\n", entryProbe, err)
			os.Exit(2)
		}
		os.Exit(probe.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	case entryRemove:
		os.Exit(removeTreeMain(os.Args[2:]))
	}
	return false
}
