package primitives

import (
	"os"
	"testing"
)

// BenchmarkSelfExeCopy times the sealed copy of the running binary a
// session makes once (selfexe.go), and reports the binary's size.
func BenchmarkSelfExeCopy(b *testing.B) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for i := 0; i < b.N; i++ {
		f, err := sealedCopy("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}
