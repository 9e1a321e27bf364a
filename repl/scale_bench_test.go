package repl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/hoststate"
	"stepbox/viz"
)

// fullContainer is the full container of issue 7, as script lines:
// namespaces uts ipc net pid mnt, overlay of base + one layer, pivot_root,
// /proc, a cgroup with a pids and a memory limit, attach, `exec true`.
// `rm` tears it down.
var fullContainer = []string{
	"new c",
	"unshare uts ipc net pid mnt",
	"mount overlay base fileA",
	"pivot_root",
	"mount proc",
	"cgroup new",
	"cgroup limit pids 64",
	"cgroup limit memory 64M",
	"cgroup attach",
	"exec true",
}

// testShell is an in-process session driven through the command table,
// as `stepbox run` drives it.
type testShell struct {
	*Shell
	out syncBuffer
}

// syncBuffer is the session's output. A command's stdout and stderr are
// copied by two goroutines: a bare bytes.Buffer shared by both loses
// output (its ReadFrom, blocked on the empty stderr, truncates what
// stdout wrote when it returns).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func (s *syncBuffer) Reset() { s.mu.Lock(); defer s.mu.Unlock(); s.b.Reset() }

// newTestShell opens a session under temporary dirs (lib shared when
// given, so the builtin layers are built once) and checks at cleanup that
// it tears down and leaves the host as it was.
func newTestShell(tb testing.TB, lib string) *testShell {
	tb.Helper()
	before, err := hoststate.Capture()
	if err != nil {
		tb.Fatal(err)
	}
	if lib == "" {
		lib = searchableTempDir(tb)
	}
	s, err := primitives.OpenSession(primitives.Dirs{Run: searchableTempDir(tb), Lib: lib})
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testShell{}
	ts.Shell = NewShell(s, &ts.out, &ts.out, viz.NewTheme("plain"), 100)
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("teardown: %v", err)
		}
		after, err := hoststate.Capture()
		if err != nil {
			tb.Fatal(err)
		}
		if d := stepboxDiff(before, after); d != "" {
			tb.Errorf("the host changed:\n%s", d)
		}
	})
	return ts
}

// stepboxDiff is hoststate.Diff without the cgroups that lie under no
// stepbox parent: on a shared machine other software makes and removes
// cgroups of its own at any time (here, memory/process_api/…).
func stepboxDiff(before, after hoststate.State) string {
	var out []string
	for _, l := range strings.Split(hoststate.Diff(before, after), "\n") {
		if l == "" || (strings.HasPrefix(l, "cgroup ") && !strings.Contains(l, "stepbox-")) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// stepboxUnchanged is hostUnchanged judged by stepboxDiff.
func stepboxUnchanged(tb testing.TB) {
	tb.Helper()
	before, err := hoststate.Capture()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		after, err := hoststate.Capture()
		if err != nil {
			tb.Fatal(err)
		}
		if d := stepboxDiff(before, after); d != "" {
			tb.Errorf("the host changed:\n%s", d)
		}
	})
}

// do runs lines and fails on the first error, with the session's output.
func (ts *testShell) do(tb testing.TB, lines ...string) {
	tb.Helper()
	for _, l := range lines {
		if err := ts.Execute(context.Background(), l); err != nil {
			tb.Fatalf("%s: %v\n%s", l, err, ts.tail())
		}
	}
}

// tail is the last part of the session's output, for failure messages.
func (ts *testShell) tail() string {
	s := ts.out.String()
	if len(s) > 3000 {
		s = "…" + s[len(s)-3000:]
	}
	return s
}

// bigLayer makes layer name holding files regular files, 100 to a
// directory, straight in the layer store.
func (ts *testShell) bigLayer(tb testing.TB, name string, files int) {
	tb.Helper()
	store, err := ts.layers()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := store.New(name, fmt.Sprintf("%d files", files)); err != nil {
		tb.Fatal(err)
	}
	root := store.Root(name)
	for i := 0; i < files; i++ {
		dir := filepath.Join(root, "data", fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte("x\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func rootForBench(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root")
	}
}

// BenchmarkStackFiles times `stack --files` (read the layers and the
// upper dir, render the panel) on a base of 1,000 and of 10,000 files.
func BenchmarkStackFiles(b *testing.B) {
	rootForBench(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ts := newTestShell(b, "")
			ts.bigLayer(b, "big", n)
			ts.do(b, "new c", "unshare mnt pid", "mount overlay base big", "pivot_root", "exec touch /created")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts.out.Reset()
				ts.do(b, "stack --files")
			}
			b.StopTimer()
			if !strings.Contains(ts.out.String(), "/created") {
				b.Fatalf("stack --files does not show the file made in the box:\n%s", ts.tail())
			}
		})
	}
}

// BenchmarkHundredLayers mounts an overlay of base and 100 layers in a box,
// pivots into it, reads a file of the top and of the bottom layer, and
// renders the stack; it reports the mount's and the render's time.
func BenchmarkHundredLayers(b *testing.B) {
	rootForBench(b)
	ts := newTestShell(b, "")
	names := []string{"base"}
	for i := 1; i <= 100; i++ {
		n := fmt.Sprintf("l%03d", i)
		ts.bigLayer(b, n, 1)
		names = append(names, n)
	}
	var mount, render time.Duration
	for i := 0; i < b.N; i++ {
		ts.do(b, "new c", "unshare mnt pid")
		t0 := time.Now()
		ts.do(b, "mount overlay "+strings.Join(names, " "))
		mount += time.Since(t0)
		ts.do(b, "pivot_root", "exec cat /etc/hostname /data/d000/f00000")
		ts.out.Reset()
		t0 = time.Now()
		ts.do(b, "stack")
		render += time.Since(t0)
		if !strings.Contains(ts.out.String(), "l100") || !strings.Contains(ts.out.String(), "l001") {
			b.Fatalf("the stack does not show layers l001 to l100:\n%s", ts.tail())
		}
		ts.do(b, "rm c")
	}
	b.ReportMetric(float64(mount.Microseconds())/1e3/float64(b.N), "mount-ms")
	b.ReportMetric(float64(render.Microseconds())/1e3/float64(b.N), "stack-ms")
}
