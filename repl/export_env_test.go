package repl

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"stepbox/primitives/step"
)

// An image's Env reaches the script only as data, and only the box's
// command: a name that is not a POSIX name (here shell code that would
// make a marker file, a space, quotes, a newline) is left out, counted
// and said; LD_PRELOAD reaches no host tool the script runs as root
// (nsenter, chroot, pivot_root: the loader would say it cannot preload
// the missing file it names); a valid variable still reaches the command.
func TestExportScriptRunsNoImageEnvOnTheHostsSide(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	state, demo := filepath.Join(dir, "state"), filepath.Join(dir, "demo.tar")
	if out, code := runStepbox(t, state, "image demo "+demo+"\n", "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	preload := filepath.Join(dir, "no-such-preload.so")
	// Names a shell runs, then names a shell cannot parse.
	bads := [][]string{{"$(touch MARKER)X=v", "`touch MARKER`Y=v"}, {"A B=1", "A'B=1", `"Q"=1`, "N\nL=1", "=1"}}
	for i, user := range []string{"", "1000:1000", "", "1000:1000"} {
		for _, root := range []string{"pivot_root", "chroot"} {
			name := root + "-uid" + strings.TrimSuffix(user, ":1000") + "-" + string(rune('a'+i))
			marker := filepath.Join(dir, name+"-injected")
			var bad []string
			for _, e := range bads[i/2] {
				bad = append(bad, strings.ReplaceAll(e, "MARKER", marker))
			}
			t.Run(name, func(t *testing.T) {
				archive, file := filepath.Join(dir, name+".tar"), filepath.Join(dir, name+".sh")
				tag := "stepbox/envy-" + strings.ReplaceAll(name, "_", "-") + ":latest"
				writeImageWith(t, demo, archive, tag, func(c *v1.Config) {
					c.User = user
					c.Cmd = []string{"/bin/sh", "-c", `printf '[%s]' "$GOOD"`}
					c.Env = append(append(c.Env, "LD_PRELOAD="+preload, "GOOD=yes it is"), bad...)
				})
				script := "image load " + archive + "\nnew e\nunshare uts ipc mnt pid\nmount overlay " + tag + "\n" + root + "\nexport script " + file + "\n"
				out, code := runStepbox(t, state, script, "--plain")
				if code != 0 {
					t.Fatalf("exit %d:\n%s", code, out)
				}
				if !strings.Contains(out, "note: the script does not carry "+step.Count(len(bad), "variable")+" of the image whose name is not a POSIX name") {
					t.Errorf("export script does not say it leaves the bad names out:\n%s", out)
				}
				// The holder script (pivot_root, a non-root User): the host's nsenter carries the Env.
				if user != "" && root == "pivot_root" && !strings.Contains(out, "note: the script does not carry LD_PRELOAD: the host's nsenter") {
					t.Errorf("export script does not say it leaves LD_PRELOAD out of nsenter's environment:\n%s", out)
				}
				b, _ := os.ReadFile(file)
				if strings.Contains(string(b), "touch") || strings.Contains(string(b), "A B") || strings.Contains(string(b), "A'B") {
					t.Errorf("the script holds an image's bad name:\n%s", b)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "sh", file)
				cmd.Env = append(os.Environ(), "BOXDIR="+filepath.Join(dir, name))
				got, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("sh %s: %v\n%s\nthe script:\n%s", file, err, got, b)
				}
				if _, err := os.Lstat(marker); err == nil {
					t.Fatalf("an image's variable name ran as a command on the host's side: %s exists", marker)
				}
				if strings.Contains(string(got), "LD_PRELOAD") {
					t.Errorf("the image's LD_PRELOAD reached a host tool:\n%s\nthe script:\n%s", got, b)
				}
				if !strings.Contains(string(got), "[yes it is]") {
					t.Errorf("the image's valid variable did not reach the command: %q", got)
				}
			})
		}
	}
}
