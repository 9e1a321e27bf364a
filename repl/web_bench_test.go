package repl

import (
	"bufio"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepbox/primitives/network"
)

// webSteps is a lecture's worth of steps, as the live view's memory
// target counts them.
const webSteps = 60

// BenchmarkLiveViewRedraw builds a full container, opens the live
// view's event stream as a browser does, and times each redraw from the
// step's end (the shell's hook) until its event has reached the stream:
// the snapshots read, the page drawn, the event sent. It reports the
// 50th and 95th percentiles, and how much the session's heap grew
// after 60 redraws with the browser connected.
func BenchmarkLiveViewRedraw(b *testing.B) {
	rootForBench(b)
	ts := newTestShell(b, "")
	ts.do(b, "new web", "unshare uts ipc net mnt pid", "mount overlay base", "pivot_root", "mount proc",
		"cgroup new", "cgroup limit pids 64", "cgroup limit memory 64M", "cgroup attach", "exec touch /test")
	benchLiveRedraw(b, ts)
}

// BenchmarkLiveViewRedrawWithNetwork is BenchmarkLiveViewRedraw with two
// boxes wired to a bridge and a published port: each redraw also reads
// the network map (every namespace's links, routes, and stepbox's nft
// table). The host side is a network namespace the benchmark made.
func BenchmarkLiveViewRedrawWithNetwork(b *testing.B) {
	rootForBench(b)
	host := newTestNetNS(b)
	b.Setenv(network.HostNSEnv, host.Path)
	ts := newTestShell(b, "")
	ts.do(b, "new db", "unshare net", "net bridge", "net veth", "net addr", "net route",
		"new web", "unshare uts ipc net mnt pid", "net veth", "net addr", "net route", "net publish 8080:80",
		"mount overlay base", "pivot_root", "mount proc", "cgroup new", "cgroup attach")
	benchLiveRedraw(b, ts)
}

// benchLiveRedraw times the live view's redraws of ts's session.
func benchLiveRedraw(b *testing.B, ts *testShell) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	base := heap()
	if err := ts.StartWeb(webDefaultAddr); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ts.StopWeb() })
	resp, err := http.Get(at(ts.web.srv, "events"))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	seqs := make(chan int, 1024)
	go func() {
		seq := regexp.MustCompile(`data-seq="(\d+)"`)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if m := seq.FindStringSubmatch(sc.Text()); m != nil && strings.HasPrefix(sc.Text(), "data: ") {
				n, _ := strconv.Atoi(m[1])
				seqs <- n
			}
		}
		close(seqs)
	}()
	<-seqs // the drawing sent on connect
	redraw := func() time.Duration {
		t0 := time.Now()
		ts.web.afterLine(ts.Shell, "exec true", nil)
		ts.web.mu.Lock()
		want := ts.web.seq
		ts.web.mu.Unlock()
		for n := range seqs {
			if n >= want {
				return time.Since(t0)
			}
		}
		b.Fatal("the event stream ended")
		return 0
	}
	for range webSteps {
		ts.do(b, "exec true")
	}
	grown := float64(heap()-min(base, heap())) / (1 << 20)
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		took = append(took, redraw())
	}
	b.StopTimer()
	slices.Sort(took)
	pct := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1e3
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(grown, "heap-MB-after-60")
}
