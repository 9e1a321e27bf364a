package images

import (
	"archive/tar"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeRandomLayer writes a tar of files 1 MB each, random (so gzip
// cannot shrink them), size bytes in all, to file.
func writeRandomLayer(b *testing.B, file string, size int64, seed uint64) {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	const per = 1 << 20
	for i := int64(0); i*per < size; i++ {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%d/f%d", seed, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: per, ModTime: time.Unix(1700000000, 0)})
		if _, err := io.CopyN(tw, rng, per); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
}

// peakRSS resets the kernel's high-water mark of this process's resident
// memory (clear_refs "5", proc(5)) and returns a function reading it.
func peakRSS(b *testing.B) func() float64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("reset VmHWM: %v", err)
	}
	return func() float64 {
		data, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				return kb / 1024
			}
		}
		return 0
	}
}

// BenchmarkLoadHundredMBImage loads a 100 MB image of 5 layers from an
// OCI layout on disk: each blob copied and checked, each layer unpacked.
// peak-MB is the process's resident high-water mark meanwhile: the
// layers stream through, so it does not grow with the image.
func BenchmarkLoadHundredMBImage(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: unpacking sets owners")
	}
	dir := b.TempDir()
	img := empty.Image
	for i := range 5 {
		file := filepath.Join(dir, fmt.Sprintf("layer%d.tar", i))
		writeRandomLayer(b, file, 20<<20, uint64(i))
		l, err := tarball.LayerFromFile(file)
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	src := filepath.Join(dir, "layout")
	p, err := layout.Write(src, empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: "bench:v1"})); err != nil {
		b.Fatal(err)
	}
	img = nil
	debug.FreeOSMemory()
	var peak float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openStoreIn(b, filepath.Join(dir, fmt.Sprint("store", i)))
		debug.FreeOSMemory()
		read := peakRSS(b)
		b.StartTimer()
		if _, err := s.Load(src, "", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		peak = max(peak, read())
		os.RemoveAll(filepath.Join(dir, fmt.Sprint("store", i)))
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
	b.ReportMetric(peak, "peak-MB")
}
