package repl

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// uptimeIn runs line (a command that prints /proc/uptime) and returns
// the seconds it read.
func uptimeIn(t *testing.T, sh *Shell, line string) float64 {
	t.Helper()
	out := sh.Out.(interface {
		Reset()
		String() string
	})
	out.Reset()
	if err := sh.Execute(context.Background(), line); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if s, err := strconv.ParseFloat(f[0], 64); err == nil {
				return s
			}
		}
	}
	t.Fatalf("%s printed no uptime:\n%s", line, out.String())
	return 0
}

// `enter` joins the box's time namespace too, as docker exec and
// `nsenter -a` do: a command entered reads the box's clocks, the same
// as one the box runs with exec, with PID 1 or without (then the box
// process keeps the host's clocks and its children read the box's).
func TestEnterReadsTheBoxsClocksAsExecDoes(t *testing.T) {
	sh, out := liveShell(t)
	const shift = 100 * 3600 // --boottime 100h
	for name, lines := range map[string][]string{
		"without PID 1":         {"new a", "unshare uts time --boottime 100h"},
		"with PID 1":            {"new b", "unshare uts pid time --boottime 100h"},
		"its own user ns first": {"new c --user", "unshare uts time --boottime 100h"},
	} {
		t.Run(name, func(t *testing.T) {
			run(t, sh, out, lines...)
			exec := uptimeIn(t, sh, "exec cat /proc/uptime")
			if exec < shift {
				t.Fatalf("exec read uptime %.0f s: the box's offset of %d s is not there", exec, shift)
			}
			for _, line := range []string{"enter -- cat /proc/uptime", "enter time -- cat /proc/uptime"} {
				if enter := uptimeIn(t, sh, line); enter < exec-60 || enter > exec+60 {
					t.Errorf("%s read uptime %.0f s, exec %.0f s: enter did not join the box's time namespace", line, enter, exec)
				}
			}
			out.Reset()
			run(t, sh, out, "explain enter -- true")
			if !strings.Contains(out.String(), "CLONE_NEWTIME") || !strings.Contains(out.String(), "time_for_children") {
				t.Errorf("explain enter does not say it joins the time namespace:\n%s", out)
			}
		})
	}
}
