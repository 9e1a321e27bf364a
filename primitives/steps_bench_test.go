package primitives

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepbox/fixtures"
	"stepbox/primitives/hoststate"
	"stepbox/primitives/layers"
	"stepbox/primitives/rootfs"
)

// containerStep is one step of the full container (issue 7): new box,
// namespaces uts ipc net pid mnt, overlay of base + one layer,
// pivot_root, /proc, a cgroup with a pids and a memory limit, attach,
// `exec true`, teardown.
type containerStep struct {
	name string
	do   func(s *Session, b **Box, name string, stack []rootfs.Layer) error
}

func unshareStep(typ string) func(*Session, **Box, string, []rootfs.Layer) error {
	return func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		t, err := LookupNamespace(typ)
		if err != nil {
			return err
		}
		_, err = (*b).Unshare([]NamespaceType{t}, UnshareOptions{})
		return err
	}
}

var containerSteps = []containerStep{
	{"new", func(s *Session, b **Box, name string, _ []rootfs.Layer) error {
		box, _, err := s.NewBox(name, false)
		*b = box
		return err
	}},
	{"unshare_uts", unshareStep("uts")},
	{"unshare_ipc", unshareStep("ipc")},
	{"unshare_net", unshareStep("net")},
	{"unshare_pid", unshareStep("pid")},
	{"unshare_mnt", unshareStep("mnt")},
	{"mount_overlay", func(_ *Session, b **Box, _ string, stack []rootfs.Layer) error {
		_, err := (*b).MountOverlay(stack)
		return err
	}},
	{"pivot_root", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, err := (*b).PivotRoot()
		return err
	}},
	{"mount_proc", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, err := (*b).Mount("proc", "", "/proc", false)
		return err
	}},
	{"cgroup_new", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, err := (*b).CgroupNew()
		return err
	}},
	{"cgroup_limit_pids", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, _, err := (*b).CgroupLimit("pids", "64")
		return err
	}},
	{"cgroup_limit_memory", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, _, err := (*b).CgroupLimit("memory", "64M")
		return err
	}},
	{"cgroup_attach", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		_, _, err := (*b).CgroupAttach()
		return err
	}},
	{"exec_true", func(_ *Session, b **Box, _ string, _ []rootfs.Layer) error {
		es, err := (*b).Exec(context.Background(), []string{"true"}, nil, Stdio{Out: discard{}, Err: discard{}})
		if err == nil && es.Code != 0 {
			err = fmt.Errorf("exec true: exit status %d", es.Code)
		}
		return err
	}},
	{"rm", func(s *Session, b **Box, name string, _ []rootfs.Layer) error {
		return s.Remove(name)
	}},
}

// rootForBench skips a benchmark that needs root (needRoot takes a *testing.T).
func rootForBench(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// benchSession opens a session under temporary dirs with the builtin
// layers built, and checks at cleanup that the host is as it was.
func benchSession(tb testing.TB) (*Session, []rootfs.Layer) {
	tb.Helper()
	before, err := hoststate.Capture()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := OpenSession(traversableDirs(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("teardown: %v", err)
		}
		after, err := hoststate.Capture()
		if err != nil {
			tb.Fatal(err)
		}
		// Only stepbox's cgroups count: other software on a shared
		// machine makes and removes its own at any time.
		for _, l := range strings.Split(hoststate.Diff(before, after), "\n") {
			if l != "" && (!strings.HasPrefix(l, "cgroup ") || strings.Contains(l, "stepbox-")) {
				tb.Errorf("the host changed: %s", l)
			}
		}
	})
	store, err := layers.Open(filepath.Join(s.Dirs.Lib, "layers"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := fixtures.Ensure(store); err != nil {
		tb.Fatal(err)
	}
	var stack []rootfs.Layer
	for _, n := range []string{"base", "fileA"} {
		stack = append(stack, rootfs.Layer{Name: n, Dir: store.Root(n)})
	}
	return s, stack
}

// buildContainer runs steps [from, to) of the full container on box name.
func buildContainer(s *Session, b **Box, name string, stack []rootfs.Layer, from, to int) error {
	for _, st := range containerSteps[from:to] {
		if err := st.do(s, b, name, stack); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

// BenchmarkContainerSteps times each step of the full container inside
// one session, one sub-benchmark per step: every iteration builds a box
// up to the step untimed, times the step, and tears the box down. It
// reports the step's median and 99th percentile.
func BenchmarkContainerSteps(b *testing.B) {
	rootForBench(b)
	s, stack := benchSession(b)
	// The first box pays for the session's parent cgroup: not a step.
	var warm *Box
	if err := buildContainer(s, &warm, "warm", stack, 0, len(containerSteps)); err != nil {
		b.Fatal(err)
	}
	for k, st := range containerSteps {
		b.Run(st.name, func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				name := "s" + strconv.Itoa(k) + "x" + strconv.Itoa(i)
				var box *Box
				b.StopTimer()
				if err := buildContainer(s, &box, name, stack, 0, k); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if err := st.do(s, &box, name, stack); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
				b.StopTimer()
				if k < len(containerSteps)-1 {
					if err := s.Remove(name); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(percentile(took, 50), "p50-ms")
			b.ReportMetric(percentile(took, 99), "p99-ms")
		})
	}
}

// percentile returns the p-th percentile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return float64(s[i-1].Nanoseconds()) / 1e6
}

// BenchmarkFiftyBoxes keeps 50 full containers (every step but teardown)
// alive at once in one session, and reports the time and memory each
// costs: the box process's and its PID 1's resident size, and how much the
// session grew.
func BenchmarkFiftyBoxes(b *testing.B) {
	rootForBench(b)
	const n = 50
	// Each box's upper tmpfs the least stepbox mounts: the session's
	// uppers together hold at most 1/2 of MemAvailable (box_upper.go), 32
	// boxes of the default size, and these write next to nothing. A size=
	// is a cap, not memory used: the figures are the same at any size.
	b.Setenv(UpperSizeEnv, strconv.Itoa(upperFloor>>20))
	s, stack := benchSession(b)
	var perBox, boxRSS, sessionGrowth []float64
	for i := 0; i < b.N; i++ {
		rss0 := residentKB(b, os.Getpid())
		t0 := time.Now()
		var boxes []*Box
		for j := 0; j < n; j++ {
			var box *Box
			name := fmt.Sprintf("f%dx%d", i, j)
			if err := buildContainer(s, &box, name, stack, 0, len(containerSteps)-1); err != nil {
				b.Fatal(err)
			}
			boxes = append(boxes, box)
		}
		perBox = append(perBox, float64(time.Since(t0).Microseconds())/1e3/n)
		b.StopTimer()
		var kb float64
		for _, box := range boxes {
			kb += float64(residentKB(b, box.PID()) + residentKB(b, box.InitPID()))
		}
		boxRSS = append(boxRSS, kb/n/1024)
		sessionGrowth = append(sessionGrowth, float64(residentKB(b, os.Getpid())-rss0)/n)
		for _, box := range boxes {
			if err := s.Remove(box.Name); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(slices.Max(perBox), "ms/box")
	b.ReportMetric(slices.Max(boxRSS), "box-MB/box")
	b.ReportMetric(slices.Max(sessionGrowth), "session-KB/box")
}

// residentKB reads VmRSS of pid from /proc/PID/status.
func residentKB(tb testing.TB, pid int) int {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	tb.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

// overlayBox is a new box with a mount namespace of its own and the
// base stack mounted as its overlay, not yet its root.
func overlayBox(t *testing.T, name string) (*Session, *Box) {
	t.Helper()
	s, stack := benchSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "mnt")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatal(err)
	}
	return s, b
}
