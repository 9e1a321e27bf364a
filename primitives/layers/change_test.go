package layers

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"stepbox/primitives/step"
)

// callsOf runs Put (with "hello\n") or Del and returns its calls as strace lines.
func callsOf(t *testing.T, s *Store, name, p string, put bool) []string {
	t.Helper()
	var st *step.Step
	var err error
	if put {
		st, err = s.Put(name, p, "hello\n")
	} else {
		st, err = s.Del(name, p)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range st.Calls {
		out = append(out, c.String())
	}
	return out
}

func TestPutWritesFileAndMakesParents(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	got := callsOf(t, s, "web", "/srv/www/index.html", true)
	root := s.Root("web")
	want := []string{
		`mkdir("` + root + `/srv", 0755) = 0`,
		`mkdir("` + root + `/srv/www", 0755) = 0`,
		`openat(AT_FDCWD, "` + root + `/srv/www/index.html", O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0644) = `,
		`write(`,
		`close(`,
	}
	if len(got) != len(want) {
		t.Fatalf("calls = %q, want %d like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("call %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	if !strings.HasSuffix(got[3], `"hello\n", 6) = 6`) {
		t.Errorf("write call = %q", got[3])
	}
	b, err := os.ReadFile(filepath.Join(root, "srv/www/index.html"))
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("file = %q, %v", b, err)
	}
	for p, perm := range map[string]fs.FileMode{"srv": 0o755, "srv/www": 0o755, "srv/www/index.html": 0o644} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode().Perm(), perm)
		}
	}
}

func TestPutOverwritesAndRecordsShellEquivalent(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	if _, err := s.Put("web", "/motd", "one"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Put("web", "/motd", "it's two")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.Root("web"), "motd"))
	if string(b) != "it's two" {
		t.Errorf("motd = %q", b)
	}
	want := `printf %s "it's two" > ` + filepath.Join(s.Root("web"), "motd")
	if len(st.Shell) != 1 || st.Shell[0] != want {
		t.Errorf("shell = %q, want %q", st.Shell, want)
	}
}

func TestPutAndDelRejectBadPaths(t *testing.T) {
	outside := t.TempDir()
	cases := []struct {
		name, path, why string
		setup           func(t *testing.T, root string)
	}{
		{"dotdot", "../x", "absolute path", nil},
		{"dotdot absolute", "/../x", "'..'", nil},
		{"dotdot inside", "/a/../../x", "'..'", nil},
		{"relative", "etc/motd", "absolute path", nil},
		{"root itself", "/", "root itself", nil},
		{"empty", "", "absolute path", nil},
		{"ESC clears the screen", "/etc/t\x1b[2J\x1b[41mLAYER", "no control characters", nil},
		{"CR rewrites the line", "/etc/motd\rfake", "no control characters", nil},
		{"newline", "/etc/a\nb", "no control characters", nil},
		{"C1 CSI", "/etc/\u009b2J", "no control characters", nil},
		{"absolute symlink out", "/link/passwd", "/link is a symlink", func(t *testing.T, root string) {
			mustSymlink(t, outside, filepath.Join(root, "link"))
		}},
		{"relative symlink out", "/up/x", "/up is a symlink", func(t *testing.T, root string) {
			mustSymlink(t, "../../../../../../../../..", filepath.Join(root, "up"))
		}},
		{"symlink out deeper", "/d/link/sub/x", "/d/link is a symlink", func(t *testing.T, root string) {
			if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outside, filepath.Join(root, "d/link"))
		}},
		{"under a file", "/f/x", "not a directory", func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		for _, cmd := range []string{"layer put", "layer del"} {
			t.Run(c.name+"/"+cmd, func(t *testing.T) {
				s := openStore(t)
				newLayer(t, s, "x")
				if c.setup != nil {
					c.setup(t, s.Root("x"))
				}
				before, err := WalkDir(s.Root("x"))
				if err != nil {
					t.Fatal(err)
				}
				if cmd == "layer put" {
					_, err = s.Put("x", c.path, "pwned")
				} else {
					_, err = s.Del("x", c.path)
				}
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("%s x %q = %v, want ErrBadPath", cmd, c.path, err)
				}
				for _, want := range []string{cmd, strconv.Quote(c.path), c.why} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				after, err := WalkDir(s.Root("x"))
				if err != nil {
					t.Fatal(err)
				}
				if len(after) != len(before) {
					t.Errorf("layer changed: %v -> %v", before, after)
				}
				if des, _ := os.ReadDir(outside); len(des) != 0 {
					t.Errorf("%s wrote outside the layer: %v", cmd, des)
				}
			})
		}
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestPutFollowsSymlinkThatStaysInsideLayer(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	root := s.Root("x")
	if err := os.Mkdir(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "real", filepath.Join(root, "alias"))
	if _, err := s.Put("x", "/alias/f", "in"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "real/f")); err != nil || string(b) != "in" {
		t.Errorf("real/f = %q, %v", b, err)
	}
}

func TestPutRefusesToWriteThroughFinalSymlink(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	mustSymlink(t, "target", filepath.Join(s.Root("x"), "link"))
	_, err := s.Put("x", "/link", "x")
	if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Put on a symlink = %v, want ErrBadPath naming the symlink", err)
	}
	if _, err := os.Lstat(filepath.Join(s.Root("x"), "target")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Put wrote through the symlink: %v", err)
	}
}

func TestPutOnUnknownLayerFailsNamingIt(t *testing.T) {
	s := openStore(t)
	_, err := s.Put("ghost", "/x", "")
	if !errors.Is(err, ErrNoLayer) || !strings.Contains(err.Error(), "layer put") || !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("Put = %v, want layer put ... ErrNoLayer naming ghost", err)
	}
	if _, err := s.Put("a b", "/x", ""); !errors.Is(err, ErrBadName) {
		t.Errorf("Put on bad name = %v, want ErrBadName", err)
	}
}

func assertWhiteout(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 || st.Mode&0o7777 != 0 {
		t.Errorf("%s: mode %o rdev %d, want a char device 0/0 with mode 000", p, st.Mode, st.Rdev)
	}
}

func TestDelWritesWhiteoutCharDevice00(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	st, err := s.Del("x", "/etc/issue")
	if err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(s.Root("x"), "etc/issue")
	assertWhiteout(t, host)
	want := `mknod("` + host + `", S_IFCHR|000, makedev(0, 0)) = 0`
	if got := st.Calls[len(st.Calls)-1].String(); got != want {
		t.Errorf("last call = %q, want %q", got, want)
	}
	if got := st.Shell[len(st.Shell)-1]; got != "mknod "+host+" c 0 0" {
		t.Errorf("shell = %q", st.Shell)
	}
	if st.Man[0] != "mknod(2)" {
		t.Errorf("man = %q", st.Man)
	}
}

func TestDelReplacesLayersOwnFileOrDir(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	if _, err := s.Put("x", "/f", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("x", "/d/sub/g", "x"); err != nil {
		t.Fatal(err)
	}
	got := callsOf(t, s, "x", "/f", false)
	if !strings.HasPrefix(got[0], "unlink(") || !strings.HasPrefix(got[1], "mknod(") {
		t.Errorf("calls = %q, want unlink then mknod", got)
	}
	if _, err := s.Del("x", "/d"); err != nil {
		t.Fatal(err)
	}
	assertWhiteout(t, filepath.Join(s.Root("x"), "f"))
	assertWhiteout(t, filepath.Join(s.Root("x"), "d"))
	st, err := s.Del("x", "/d")
	if err != nil || len(st.Calls) != 0 || !strings.Contains(st.Summary, "already") {
		t.Errorf("second Del = %+v, %v; want nothing done", st, err)
	}
}

func TestPutAfterDelBringsFileBack(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	if _, err := s.Del("x", "/etc/motd"); err != nil {
		t.Fatal(err)
	}
	got := callsOf(t, s, "x", "/etc/motd", true)
	if !strings.HasPrefix(got[0], "unlink(") {
		t.Errorf("calls = %q, want the whiteout unlinked first", got)
	}
	fi, err := os.Lstat(filepath.Join(s.Root("x"), "etc/motd"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("etc/motd = %v, %v; want a regular file", fi, err)
	}
}

func TestPutUnderWhiteoutDirFails(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	if _, err := s.Del("x", "/etc"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put("x", "/etc/motd", "x")
	if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "/etc is a whiteout") {
		t.Errorf("Put = %v, want ErrBadPath saying /etc is a whiteout", err)
	}
}

// One function writes each of put's and del's records and plans: the plan
// of a del whose path is already a whiteout makes nothing, as the step
// then does (the hand-built plan listed an mknod the step never made).
func TestPlansOfPutAndDelAreTheStepsRecords(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	fd := regexp.MustCompile(`\([0-9]+\)?$`)
	calls := func(st *step.Step) []string {
		var out []string
		for _, c := range st.Calls {
			// the call and its path: descriptors differ (the plan's is 3)
			out = append(out, fd.ReplaceAllString(strings.Split(c.Syscall, ",")[0], "(FD"))
		}
		return out
	}
	for _, c := range []struct {
		plan func() (*step.Step, error)
		run  func() (*step.Step, error)
	}{
		{func() (*step.Step, error) { return s.PlanPut("x", "/a/b/f", "hi") }, func() (*step.Step, error) { return s.Put("x", "/a/b/f", "hi") }},
		{func() (*step.Step, error) { return s.PlanDel("x", "/a/b/f") }, func() (*step.Step, error) { return s.Del("x", "/a/b/f") }},
		{func() (*step.Step, error) { return s.PlanDel("x", "/a/b/f") }, func() (*step.Step, error) { return s.Del("x", "/a/b/f") }},
		{func() (*step.Step, error) { return s.PlanPut("x", "/a/b/f", "back") }, func() (*step.Step, error) { return s.Put("x", "/a/b/f", "back") }},
	} {
		plan, err := c.plan()
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.run()
		if err != nil {
			t.Fatal(err)
		}
		p, r := calls(plan), calls(st)
		if !slices.Equal(p, r) || !slices.Equal(plan.Shell, st.Shell) || !slices.Equal(plan.Man, st.Man) || plan.Undo != st.Undo {
			t.Errorf("%s: plan\n  %q %q\nstep\n  %q %q", st.Command, p, plan.Shell, r, st.Shell)
		}
	}
}
