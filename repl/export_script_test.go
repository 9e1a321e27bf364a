package repl

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// An image whose config names a non-root User: the script `export
// script` writes runs the image's command as that uid and gid, with no
// supplementary groups and the capability sets the box's own `exec`
// gives it, and leaves no process behind when the command ends.
func TestExportScriptRunsTheCommandAsTheImagesUser(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	state, demo, archive := filepath.Join(dir, "state"), filepath.Join(dir, "demo.tar"), filepath.Join(dir, "user.tar")
	if out, code := runStepbox(t, state, "image demo "+demo+"\n", "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	writeImageWithUser(t, demo, archive, "stepbox/demo-user:latest", "1000:1000")

	for _, chroot := range []bool{false, true} {
		root := "pivot_root"
		if chroot {
			root = "chroot"
		}
		t.Run(root, func(t *testing.T) {
			file := filepath.Join(dir, root+".sh")
			ids := "exec grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):' /proc/self/status"
			script := "image load " + archive + "\n" +
				"new " + root + "\nunshare uts ipc mnt pid\nhostname web\nmount overlay stepbox/demo-user\n" + root + "\nmount proc\nnnp\n" +
				ids + "\nexport script " + file + "\n"
			out, code := runStepbox(t, state, script, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			inBox := idLines(out)
			if !strings.Contains(inBox, "Uid:\t1000\t1000\t1000\t1000") {
				t.Fatalf("the box's exec does not run as the image's User:\n%s", out)
			}
			b, _ := os.ReadFile(file)
			if strings.Contains(string(b), "runs as root") {
				t.Errorf("the script still says it runs as root:\n%s", b)
			}
			run := func(args ...string) string {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "sh", append([]string{file}, args...)...)
				cmd.Env = append(os.Environ(), "BOXDIR="+filepath.Join(dir, root))
				// Supplementary groups the script's root has, which the
				// image's User must not keep.
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Groups: []uint32{4, 27}}}
				got, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("sh %s: %v\n%s\nthe script:\n%s", file, err, got, b)
				}
				return string(got)
			}
			if got := run(); !strings.Contains(got, "hello from /app as uid 1000") {
				t.Errorf("the image's Cmd printed %q", got)
			}
			got := run("grep", "-E", "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):", "/proc/self/status")
			if idLines(got) != inBox {
				t.Errorf("ids and capabilities in the rebuilt box:\n%s\nin stepbox's box:\n%s", got, inBox)
			}
			if !regexp.MustCompile(`(?m)^Groups:\s*$`).MatchString(got) || !strings.Contains(got, "Gid:\t1000\t1000\t1000\t1000") {
				t.Errorf("want gid 1000 and no supplementary groups:\n%s", got)
			}
			if got := run("hostname"); strings.TrimSpace(got) != "web" {
				t.Errorf("hostname in the rebuilt box: %q", got)
			}
			if left := processesRunning(t, file); len(left) > 0 {
				t.Errorf("after the command ended, processes of the script remain: %v", left)
			}
		})
	}
}

// writeImageWithUser writes to dst the image of the `docker save`
// archive src, tagged tag, with User in its config.
func writeImageWithUser(t *testing.T, src, dst, tag, user string) {
	t.Helper()
	writeImageWith(t, src, dst, tag, func(c *v1.Config) { c.User = user })
}

// writeImageWith writes to dst the image of the `docker save` archive
// src, tagged tag, with its config changed by change.
func writeImageWith(t *testing.T, src, dst, tag string, change func(*v1.Config)) {
	t.Helper()
	img, err := tarball.ImageFromPath(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	change(&cf.Config)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(dst, ref, img); err != nil {
		t.Fatal(err)
	}
}

// idLines are the Uid, Gid, Groups and Cap… lines of
// /proc/PID/status found in out, in order, trailing blanks dropped.
func idLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if regexp.MustCompile(`^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):`).MatchString(l) {
			keep = append(keep, strings.TrimRight(l, " \t"))
		}
	}
	return strings.Join(keep, "\n")
}

// processesRunning are the pids of processes whose command line holds
// word.
func processesRunning(t *testing.T, word string) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), word) {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// The script carries no_new_privs (setpriv before unshare: inherited by
// the box's command), and says, in the file and to the learner, that it
// does not carry the capability sets and the seccomp filter.
func TestExportScriptCarriesNoNewPrivsAndSaysWhatItCannotCarry(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "box.sh")
	script := "new a\nunshare uts ipc mnt pid\nmount overlay base\npivot_root\ncaps docker\nnnp\nseccomp docker\nexport script " + file + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "note: the script does not carry the box's capability sets (caps) and seccomp filter") {
		t.Errorf("export script does not say what it leaves out:\n%s", out)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), "# NOT carried: the box's capability sets (caps) and seccomp filter") {
		t.Errorf("the script does not say what it leaves out:\n%s", b)
	}
	cmd := exec.Command("sh", file, "grep", "NoNewPrivs", "/proc/self/status")
	cmd.Env = append(os.Environ(), "BOXDIR="+filepath.Join(dir, "box"))
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "NoNewPrivs:\t1") {
		t.Errorf("sh %s: %v\n%s\nthe script:\n%s", file, err, got, b)
	}
}
