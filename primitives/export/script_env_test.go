package export

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// On a holder script (non-root User) the host's nsenter carries the
// image's Env: every variable that would make it load or read a file the
// image names is left out and named; a name that is not a POSIX name is
// left out on every script, counted, never written.
func TestScriptLeavesOutLoaderVariablesAndBadNames(t *testing.T) {
	env := []string{"PATH=/bin", "LD_PRELOAD=/x.so", "LD_LIBRARY_PATH=/l", "GCONV_PATH=/g", "GLIBC_TUNABLES=a=b",
		"MALLOC_ARENA_MAX=1", "LC_ALL=/evil", "LANG=C.UTF-8", "TZ=UTC", "TZ=/evil", "$(id)X=1", "A B=1", "GOOD=1"}
	b := Box{Name: "t", Namespaces: []string{"uts", "mnt", "pid"}, UID: 1000, GID: 1000, Env: env, Args: []string{"/bin/true"}}
	keep, bad, held := scriptEnv(b)
	if want := []string{"PATH=/bin", "LANG=C.UTF-8", "TZ=UTC", "GOOD=1"}; !slices.Equal(keep, want) {
		t.Errorf("holder script keeps %q, want %q", keep, want)
	}
	if want := []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "LC_ALL", "TZ"}; bad != 2 || !slices.Equal(held, want) {
		t.Errorf("bad %d held %q, want 2 and %q", bad, held, want)
	}
	s := Script(b)
	for _, w := range []string{"# NOT carried: 2 variables of the image whose name is not a POSIX name", "# NOT carried: LD_PRELOAD LD_LIBRARY_PATH"} {
		if !strings.Contains(s, w) {
			t.Errorf("the script does not say %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "$(id)") || strings.Contains(s, "/x.so") {
		t.Errorf("the script holds a left-out variable:\n%s", s)
	}
	// Root User: the Env reaches only the box's command, after pivot_root, so all valid names are kept.
	b.UID, b.GID = 0, 0
	if keep, bad, held := scriptEnv(b); len(keep) != len(env)-2 || bad != 2 || held != nil {
		t.Errorf("root script keeps %q (bad %d, held %q)", keep, bad, held)
	}
}

// The POSIX quoting every image or box string goes through reads back,
// under sh, as the very bytes it quoted.
func TestShellQuotePOSIXReadsBackHostileStrings(t *testing.T) {
	for _, s := range []string{"$(id)", "`id`", "a'b", "'", "''\\'", "x\ny", "\x01\x1b[31m\x7f", "\xff\xfe bad utf-8", "-n", "*", "~root", "a b\tc", "${IFS}", "\\", "!"} {
		out, err := exec.Command("sh", "-c", "printf %s "+step.ShellQuotePOSIX(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh read %q back as %q (%v); quoted: %s", s, out, err, step.ShellQuotePOSIX(s))
		}
	}
}
