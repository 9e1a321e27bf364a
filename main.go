// Command stepbox is an interactive shell in which a learner builds a real
// Linux container one kernel primitive at a time.
package main

import (
	"os"

	"stepbox/primitives"
	"stepbox/repl"
)

func main() {
	// Box processes and `enter` are re-executions of this binary: they
	// must run before anything else starts a goroutine or reads flags.
	if primitives.Reexec() {
		return
	}
	os.Exit(repl.Main(os.Args[1:]))
}
