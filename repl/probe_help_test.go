package repl

import (
	"context"
	"strings"
	"testing"
)

// `help probe` says that the probe is watched for a tracer, which could
// make its syscalls fail and a hole look closed, and that a probe seen
// traced reports unknown (box_probe_trace.go).
func TestHelpProbeSaysATracedProbeReportsUnknown(t *testing.T) {
	sh, out := plainShell()
	if err := sh.Execute(context.Background(), "help probe"); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"TracerPid (/proc/PID/status) from the host", "non-dumpable", "if it saw a tracer (ptrace(2))", "unknown"} {
		if !strings.Contains(text, want) {
			t.Errorf("help probe does not say %q:\n%s", want, out)
		}
	}
}
