package repl

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/network"
	"stepbox/viz"
)

// benchNetShell is a session whose host side is a namespace the benchmark
// made, with a bridge.
func benchNetShell(b *testing.B) *testShell {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	host := newTestNetNS(b)
	b.Setenv(network.HostNSEnv, host.Path)
	s, err := primitives.OpenSession(primitives.Dirs{Run: b.TempDir(), Lib: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	sh := &testShell{}
	sh.Shell = NewShell(s, &sh.out, &sh.out, viz.NewTheme("plain"), 200)
	b.Cleanup(func() { s.Close() })
	benchRun(b, sh, "net bridge")
	return sh
}

func benchRun(b *testing.B, sh *testShell, lines ...string) {
	b.Helper()
	for _, l := range lines {
		if err := sh.Execute(context.Background(), l); err != nil {
			b.Fatalf("%s: %v\n%s", l, err, sh.out.String())
		}
	}
}

// reportP50 reports the median of the timed runs in milliseconds.
func reportP50(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) > 0 {
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	}
}

// `net veth` + `net addr` + `net route` for one box (issue 17: p50 ≤ 5 ms).
func BenchmarkNetVethAddrRoute(b *testing.B) {
	sh := benchNetShell(b)
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("b%d", i)
		benchRun(b, sh, "new "+name, "unshare net")
		sh.out.Reset()
		b.StartTimer()
		start := time.Now()
		benchRun(b, sh, "net veth", "net addr", "net route")
		d = append(d, time.Since(start))
		b.StopTimer()
		benchRun(b, sh, "rm "+name)
		b.StartTimer()
	}
	reportP50(b, d)
}

// The network map with 20 wired boxes, read and drawn (issue 17: ≤ 10 ms).
func BenchmarkNetMap20Boxes(b *testing.B) {
	sh := benchNetShell(b)
	for i := 0; i < 20; i++ {
		benchRun(b, sh, fmt.Sprintf("new b%d", i), "unshare net", "net veth", "net addr", "net route")
	}
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		m, err := sh.Session.NetMap()
		if err != nil {
			b.Fatal(err)
		}
		_ = viz.NetPanel(m, nil, 200, sh.Theme)
		d = append(d, time.Since(start))
	}
	reportP50(b, d)
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// The first ping between two boxes, as ping measures it (ARP included):
// measured and reported, no target.
func BenchmarkNetFirstPingBetweenBoxes(b *testing.B) {
	sh := benchNetShell(b)
	benchRun(b, sh, "new a", "unshare net", "net veth", "net addr", "net route")
	var rtts []time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("p%d", i)
		benchRun(b, sh, "new "+name, "unshare net", "net veth", "net addr", "net route")
		sh.out.Reset()
		benchRun(b, sh, "exec busybox ping -c1 -W2 172.20.0.2")
		m := pingTime.FindStringSubmatch(sh.out.String())
		if m == nil {
			b.Fatalf("no round-trip time in:\n%s", sh.out.String())
		}
		ms, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
		benchRun(b, sh, "rm "+name, "use a")
	}
	reportP50(b, rtts)
}

// `net trace` around a command that sends nothing: the maps before and
// after, the trace chains added and removed, NFNLGRP_NFTRACE joined and
// read until quiet. Measured and reported, no target.
func BenchmarkNetTraceOfACommandThatSendsNothing(b *testing.B) {
	sh := benchNetShell(b)
	benchRun(b, sh, "new a", "unshare net", "net veth", "net addr", "net route", "net nat")
	var d []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sh.out.Reset()
		start := time.Now()
		benchRun(b, sh, "net trace true")
		d = append(d, time.Since(start))
	}
	reportP50(b, d)
}
