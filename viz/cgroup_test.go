package viz

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// Other panels' tests may define -update too: define it once, read it by name.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// hybridSnapshot is a box "web" under memory 32M, pids 20, cpu 20% on a
// hybrid host, after its memory hog was OOM-killed, its fork loop hit the
// limit and its spinner was throttled; the box read its own
// /proc/self/cgroup after `unshare cgroup`. Numbers are from a real run.
func hybridSnapshot() cgroups.Snapshot {
	v1 := []struct {
		id    int
		h, at string
	}{
		{9, "name=systemd", "/"}, {8, "pids", "/"}, {7, "blkio", "/"}, {6, "freezer", "/"}, {5, "devices", "/"},
		{4, "memory", "/process_api/6bbff6919ce09e09f71295b25c38bc9e"}, {3, "cpuset", "/"}, {2, "cpuacct", "/"}, {1, "cpu", "/"},
	}
	parent := cgroups.Group{Name: "stepbox-4242"}
	var host, own []procfs.Cgroup
	for _, h := range v1 {
		at := filepath.Join(h.at, "stepbox-4242")
		parent.Dirs = append(parent.Dirs, cgroups.Dir{Hierarchy: h.h, Path: filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(h.h, "name="), at), Cgroup: at})
		host = append(host, procfs.Cgroup{HierarchyID: h.id, Controllers: []string{h.h}, Path: filepath.Join(at, "web-0123456789ab")})
		own = append(own, procfs.Cgroup{HierarchyID: h.id, Controllers: []string{h.h}, Path: "/"})
	}
	host = append(host, procfs.Cgroup{Path: "/"})
	own = append(own, procfs.Cgroup{Path: "/"})
	web := parent
	web.Name, web.ID = "web-0123456789ab", "0123456789ab"
	db := parent
	db.Name, db.ID = "db-89abcdef0123", "89abcdef0123"
	return cgroups.Snapshot{
		Mode: cgroups.Hybrid,
		Parent: cgroups.Node{
			Group: parent,
			Stats: cgroups.Stats{
				Memory: &cgroups.MemoryStats{Current: 34_988_032, Max: cgroups.Unlimited},
				Pids:   &cgroups.PidsStats{Current: 21, Max: cgroups.Unlimited},
				CPU:    &cgroups.CPUStats{UsageUsec: 2_514_000, QuotaUsec: cgroups.Unlimited, PeriodUsec: 100000},
			},
			CPUs: 0.21,
			Children: []cgroups.Node{
				{Group: db, Stats: cgroups.Stats{
					Memory: &cgroups.MemoryStats{Current: 1_433_600, Max: cgroups.Unlimited},
					Pids:   &cgroups.PidsStats{Current: 1, Max: cgroups.Unlimited},
					CPU:    &cgroups.CPUStats{UsageUsec: 12_000, QuotaUsec: cgroups.Unlimited, PeriodUsec: 100000},
				}, Procs: []int{4311}, CPUs: cgroups.Unknown},
				{Group: web, Stats: cgroups.Stats{
					Memory: &cgroups.MemoryStats{Current: 33_550_336, Max: 32 << 20, LimitHits: 412, OOMKill: 1},
					Pids:   &cgroups.PidsStats{Current: 20, Max: 20, Refused: 37},
					CPU:    &cgroups.CPUStats{UsageUsec: 2_502_000, Periods: 52, Throttled: 49, ThrottledUsec: 3_981_000, QuotaUsec: 20000, PeriodUsec: 100000},
				}, Procs: []int{4250, 4251, 4260}, CPUs: 0.2},
			},
		},
		Box: "web", BoxGroup: "web-0123456789ab", BoxPID: 4250,
		HostView: host, OwnView: own,
		Taken: time.Date(2025, 4, 9, 11, 20, 0, 0, time.UTC),
	}
}

// unifiedSnapshot is a fresh box on a systemd v2 host whose session sits
// in a scope, so the parent went to the nearest slice; no own view read.
func unifiedSnapshot() cgroups.Snapshot {
	at := "/user.slice/user-1000.slice/stepbox-4242"
	parent := cgroups.Group{Name: "stepbox-4242", Dirs: []cgroups.Dir{{Path: "/sys/fs/cgroup" + at, Cgroup: at, Controllers: []string{"cpu", "memory", "pids"}}}}
	web := parent
	web.Name, web.ID = "web-0123456789ab", "0123456789ab"
	return cgroups.Snapshot{
		Mode: cgroups.Unified,
		Parent: cgroups.Node{Group: parent, CPUs: cgroups.Unknown, Stats: cgroups.Stats{
			Memory: &cgroups.MemoryStats{Current: 524_288, Max: cgroups.Unlimited},
			Pids:   &cgroups.PidsStats{Current: 1, Max: cgroups.Unlimited},
			CPU:    &cgroups.CPUStats{UsageUsec: 8_000, QuotaUsec: cgroups.Unlimited, PeriodUsec: 100000},
		}, Children: []cgroups.Node{{Group: web, CPUs: cgroups.Unknown, Procs: []int{4250}, Stats: cgroups.Stats{
			Memory: &cgroups.MemoryStats{Current: 524_288, Max: 64 << 20},
			Pids:   &cgroups.PidsStats{Current: 1, Max: 20},
			CPU:    &cgroups.CPUStats{UsageUsec: 8_000, QuotaUsec: 50000, PeriodUsec: 100000},
		}}}},
		Box: "web", BoxGroup: "web-0123456789ab", BoxPID: 4250,
		HostView: []procfs.Cgroup{{Path: at + "/web-0123456789ab"}},
	}
}

func TestCgroupPanelMatchesGoldenFiles(t *testing.T) {
	for name, snap := range map[string]cgroups.Snapshot{"v1": hybridSnapshot(), "v2": unifiedSnapshot()} {
		for _, width := range []int{80, 120} {
			for _, theme := range []string{"plain", "color"} {
				file := filepath.Join("testdata", "cgroup_"+name+"_"+theme+"_"+strconv.Itoa(width)+".golden")
				got := CgroupPanel(snap, width, NewTheme(theme))
				if updateGolden() {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test ./viz -run CgroupPanel -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the panel:\n%s", file, got)
				}
			}
		}
	}
}

func TestCgroupPanelFitsTheWidthAndPlainHasNoEscapes(t *testing.T) {
	for _, snap := range []cgroups.Snapshot{hybridSnapshot(), unifiedSnapshot()} {
		for _, width := range []int{40, 80, 100, 120, 200} {
			for _, theme := range []string{"plain", "color", "contrast"} {
				out := CgroupPanel(snap, width, NewTheme(theme))
				for _, l := range strings.Split(out, "\n") {
					if w := lipgloss.Width(l); w > width {
						t.Errorf("%s at %d: line is %d wide: %q", theme, width, w, l)
					}
				}
				if theme == "plain" && strings.Contains(out, "\x1b") {
					t.Errorf("plain panel at %d has escape codes", width)
				}
			}
		}
	}
}

func TestCgroupPanelShowsLimitsBitingAndBothViews(t *testing.T) {
	out := CgroupPanel(hybridSnapshot(), 120, NewTheme("plain"))
	for _, want := range []string{
		"oom_kill 1", "forks refused 37", "throttled 49/52 periods", "32.0M / 32M", "20 / 20",
		"◀ box web", "procs 4250 4251 4260",
		"/proc/4250/cgroup, read by the host", "/proc/self/cgroup, read inside the box",
		"│ 4:memory:/", "1:cpu:/stepbox-4242/web-0123456789ab",
		// A path too long for its column loses whole names, not letters.
		"4:memory:/process_api/…/stepbox-4242/web-0123456789ab",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("panel lacks %q:\n%s", want, out)
		}
	}
}

func BenchmarkCgroupPanel(b *testing.B) {
	snap, th := hybridSnapshot(), NewTheme("color")
	for b.Loop() {
		CgroupPanel(snap, 120, th)
	}
}
