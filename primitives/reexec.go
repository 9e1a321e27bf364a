package primitives

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Hidden entry points of the stepbox binary. A box process (`__box`)
// never reaches Go: the executor's constructor (executor.c) takes it over
// before the runtime starts. main dispatches the others (see Reexec).
const (
	entryBox   = "__box"   // a box process: the C executor
	entryEnter = "__enter" // joins a box's namespaces with setns(2), then runs a command
)

// selfExe is the path a box process re-executes. /proc/self/exe is a magic
// link: it reaches the binary even where the path to it is not visible.
const selfExe = "/proc/self/exe"

func init() {
	// `enter` joins namespaces on its main thread, and /proc/PID/ns shows
	// the main thread: lock it before main runs.
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "__") {
		runtime.LockOSThread()
	}
}

// Reexec runs a hidden entry point when os.Args names one, and never
// returns in that case. It returns false otherwise.
func Reexec() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case entryBox:
		// Only a binary built without cgo gets here.
		fmt.Fprintln(os.Stderr, "stepbox __box: this binary has no executor: build it with cgo (CGO_ENABLED=1, gcc)")
		os.Exit(2)
	case entryEnter:
		os.Exit(runEnter(os.Args[2:]))
	}
	return false
}
