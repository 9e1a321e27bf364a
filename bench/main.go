// Command bench measures stepbox side by side with runc, bubblewrap and
// unshare on the same machine, runs the Go benchmarks of the packages, and
// writes one table to bench/RESULTS.md. With -reliability it instead puts
// the figures of a `make soak` log into that file's reliability section.
//
// It is run by `make bench` (bench/run.sh), as root, with runc, bwrap and
// hyperfine installed from Debian.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type config struct {
	stepbox   string // the stepbox binary
	out       string // RESULTS.md
	runs      int    // hyperfine runs per command
	warmup    int
	benchtime string // -benchtime of the step benchmarks
	note      string // how the machine was loaded
	work      string // scratch dir
}

func main() {
	var c config
	flag.StringVar(&c.stepbox, "stepbox", "./stepbox", "the stepbox binary to measure")
	flag.StringVar(&c.out, "out", "bench/RESULTS.md", "where the table goes")
	flag.IntVar(&c.runs, "runs", 20, "hyperfine runs per command (at least 20)")
	flag.IntVar(&c.warmup, "warmup", 3, "hyperfine warmup runs")
	flag.StringVar(&c.benchtime, "benchtime", "30x", "-benchtime of the step-latency benchmark")
	flag.StringVar(&c.note, "note", "", "a note on the machine's load, printed with the results")
	soakLog := flag.String("reliability", "", "a `make soak` log: write its figures into -out and stop")
	fuzzStats := flag.String("fuzz-stats", "", "with -reliability: the STEPBOX_FUZZ_STATS dir of the fuzz run")
	flag.Parse()
	if *soakLog != "" {
		if err := writeReliability(c.out, *soakLog, *fuzzStats); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: namespaces, mounts and cgroups need it")
	}
	if c.runs < 20 {
		return fmt.Errorf("-runs %d: use at least 20", c.runs)
	}
	abs, err := filepath.Abs(c.stepbox)
	if err != nil {
		return err
	}
	c.stepbox = abs
	if c.work, err = os.MkdirTemp("", "stepbox-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	r := &results{Date: time.Now().UTC(), Note: c.note, Machine: describeMachine(), Runs: c.runs, Warmup: c.warmup}
	r.LoadBefore = loadAverage()
	logf("preparing the rootfs, the OCI bundle and the scripts in %s", c.work)
	fx, err := prepare(c)
	if err != nil {
		return err
	}
	defer fx.cleanup()
	logf("side by side: the full container")
	if r.Full, err = hyperfine(c, "full", fx.fullCommands()); err != nil {
		return err
	}
	logf("side by side: the namespaces script of issue 2")
	if r.Namespaces, err = hyperfine(c, "namespaces", fx.namespaceCommands()); err != nil {
		return err
	}
	logf("memory of a session and its box")
	if r.Memory, err = measureMemory(c, fx); err != nil {
		return err
	}
	logf("Go benchmarks")
	if r.Bench, err = goBenchmarks(c); err != nil {
		return err
	}
	r.LoadAfter = loadAverage()
	old, _ := os.ReadFile(c.out)
	text := r.markdown(byHandSection(string(old)), reliabilitySection(string(old)))
	if err := os.WriteFile(c.out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Print(text)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// results is everything the table shows.
type results struct {
	Date                  time.Time
	Note                  string
	Machine               []string
	Runs, Warmup          int
	LoadBefore, LoadAfter string
	Full, Namespaces      []timing
	Memory                memory
	Bench                 map[string]map[string]float64 // benchmark → unit → value
}

// timing is one hyperfine result, in milliseconds.
type timing struct {
	Name                string
	Median, Mean, Sigma float64
	Min, Max            float64
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
