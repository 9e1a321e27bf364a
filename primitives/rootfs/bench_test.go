package rootfs_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
)

// BenchmarkOverlayPivotProc times the three steps of making a box's root
// — mount overlay of 3 layers, pivot_root, mount proc — each in a fresh
// mount namespace on a fresh thread, and reports each step's median.
func BenchmarkOverlayPivotProc(b *testing.B) {
	needRoot(b)
	hostMountsUnchanged(b)
	img := newImage(b)
	dir := b.TempDir()
	var overlay, pivot, proc []time.Duration
	for i := 0; i < b.N; i++ {
		box := filepath.Join(dir, fmt.Sprint(i))
		d := make(chan [3]time.Duration)
		errc := make(chan error, 1)
		go func() {
			// Never unlocked: the thread leaves with its namespace and root.
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
				errc <- err
				return
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				errc <- err
				return
			}
			t0 := time.Now()
			if _, err := rootfs.MountOverlay(rootfs.Local, img.layers, box+"/upper", box+"/work", box+"/merged"); err != nil {
				errc <- err
				return
			}
			t1 := time.Now()
			if _, err := rootfs.PivotRoot(rootfs.Local, box+"/merged", false); err != nil {
				errc <- err
				return
			}
			t2 := time.Now()
			if _, err := rootfs.MountProc(rootfs.Local, "/", "/proc"); err != nil {
				errc <- err
				return
			}
			d <- [3]time.Duration{t1.Sub(t0), t2.Sub(t1), time.Since(t2)}
		}()
		select {
		case err := <-errc:
			b.Fatal(err)
		case t := <-d:
			overlay, pivot, proc = append(overlay, t[0]), append(pivot, t[1]), append(proc, t[2])
		}
	}
	b.ReportMetric(median(overlay), "overlay-µs")
	b.ReportMetric(median(pivot), "pivot_root-µs")
	b.ReportMetric(median(proc), "proc-µs")
}

func median(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Nanoseconds()) / 1e3
}

func BenchmarkReadStackFiles1000(b *testing.B) {
	layers, upper := thousandFiles(b)
	for b.Loop() {
		if _, err := rootfs.ReadStack(layers, upper, "/m", true); err != nil {
			b.Fatal(err)
		}
	}
}
