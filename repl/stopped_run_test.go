package repl

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// In `stepbox run` nobody can press Ctrl-C: an exec or `enter -- CMD`
// whose command the box stops (`kill -STOP $$`) is ended once it has
// stayed stopped for stoppedEnd, and its line fails naming the command,
// the stop, its PIDs and what was done; a line marked '-' goes on, an
// unmarked one stops the run. The run waited for ever (ut34 F4).
func TestRunEndsACommandThatStaysStopped(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for i, how := range []string{"exec", "enter --"} {
		tolerated, failed := fmt.Sprintf("stopped-881%d", i), fmt.Sprintf("stopped-882%d", i)
		dir := t.TempDir()
		script := "new web\nunshare uts pid\n" +
			"-" + how + " " + stopsItself(tolerated) + "\n" +
			"exec printf '%s-%s\\n' after the tolerated stop\n" +
			how + " " + stopsItself(failed) + "\n" +
			"exec printf '%s-%s\\n' after the failed stop\n"
		// stoppedEnd twice, the steps and the teardown, on a busy
		// machine: the old code's wait never ended.
		out := runStepboxWithin(t, 2*stoppedEnd+40*time.Second, dir, script)
		said := strings.Join(strings.Fields(out), " ")
		// printf's format takes its arguments two at a time: the line
		// echoed says "tolerated stop", its output "tolerated-stop".
		if !strings.Contains(said, "tolerated-stop") {
			t.Errorf("%s: the run did not go on past the '-' line's stopped command:\n%s", how, out)
		}
		if strings.Contains(said, "failed-stop") {
			t.Errorf("%s: the run went on past the failed line:\n%s", how, out)
		}
		if regexp.MustCompile(`(?m)^\s*continued\s*$`).MatchString(out) {
			t.Errorf("%s: a stopped command went on:\n%s", how, out)
		}
		cmd := strings.Fields(how)[0] + " sh"
		errRe := regexp.MustCompile(regexp.QuoteMeta(cmd+": the command (PID ") + `\d+` + regexp.QuoteMeta(" in the box, host PID ") + `(\d+)` +
			regexp.QuoteMeta(") was stopped by a signal (state T: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU, from the box or itself) and stayed so for "+stoppedEnd.String()+": with no terminal of yours to press Ctrl-C in, stepbox ended it (SIGKILL to its process group)"))
		m := errRe.FindAllStringSubmatch(said, -1)
		if len(m) != 2 {
			t.Errorf("%s: want the error twice (the '-' line and the failed one), got %d:\n%s", how, len(m), out)
		}
		if !strings.Contains(said, "stepbox run: - line 5 failed; everything the script made has been torn down") {
			t.Errorf("%s: the run did not fail at the stopped command's line:\n%s", how, out)
		}
		if strings.Contains(said, "Ctrl-C ends it") {
			t.Errorf("%s: the notice offers Ctrl-C, which a run has not:\n%s", how, out)
		}
		if n := strings.Count(said, "is stopped by a signal"); n != 2 {
			t.Errorf("%s: want the notice once for each stopped command, got %d:\n%s", how, n, out)
		}
		for _, sm := range m {
			pid, _ := strconv.Atoi(sm[1])
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && (bytes.HasSuffix(b, []byte("\x00"+tolerated+"\x00")) || bytes.HasSuffix(b, []byte("\x00"+failed+"\x00"))) {
				t.Errorf("%s: the stopped command (host PID %d) outlived the run", how, pid)
			}
		}
		assertNoSessions(t, dir)
	}
}
