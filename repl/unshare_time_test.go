package repl

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// An offset the kernel refuses (ut29 F12: --boottime
// 9223372036854775807ns or -9223372036s) is refused before unshare(2):
// the box is left as it was, its process's time_for_children the one it
// had, and the prompt, `ns` and `explain` say so; the error names the
// flag, the kernel's rule and the offsets it takes. No other type listed
// with time is made either. An offset with a negative fraction is
// written as the kernel takes it (seconds, then 0-999999999 ns).
func TestARefusedTimeOffsetLeavesTheBoxAsItWas(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new a")
	b := sh.Current()
	link := fmt.Sprintf("/proc/%d/ns/time_for_children", b.CommandPID())
	before, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, flag string }{
		{"unshare time --boottime 9223372036854775807ns", "boottime"},
		{"unshare time --boottime -9223372036s", "boottime"},
		{"unshare time net --monotonic 2562047h", "monotonic"},
		{"explain unshare time --boottime -9223372036s", "boottime"},
	} {
		err := sh.Execute(context.Background(), tc.line)
		for _, want := range []string{"unshare time --" + tc.flag + " ", "the kernel keeps a shifted clock from 0 to KTIME_SEC_MAX/2 = 4611686018s", "give --" + tc.flag + " from -"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error saying %q", tc.line, err, want)
			}
		}
		if after, _ := os.Readlink(link); after != before {
			t.Errorf("after %s the box's time_for_children is %s, was %s", tc.line, after, before)
		}
		if got := sh.Prompt(); got != "a[] ▸ " || len(b.Unshared()) > 0 {
			t.Errorf("after %s the prompt is %q, the box's namespaces %v", tc.line, got, b.Unshared())
		}
		out.Reset()
		run(t, sh, out, "ns")
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "time_for_children") && strings.Contains(l, "*") {
				t.Errorf("after %s, `ns` shows a time namespace of the box's own: %s", tc.line, l)
			}
		}
	}
	out.Reset()
	run(t, sh, out, "unshare time --monotonic -1.5s", "exec cat /proc/self/timens_offsets")
	if got := sh.Prompt(); got != "a[time] ▸ " {
		t.Errorf("after unshare time --monotonic -1.5s the prompt is %q", got)
	}
	if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), "monotonic -2 500000000") {
		t.Errorf("--monotonic -1.5s: the box's timens_offsets:\n%s", out)
	}
}
