package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// hyperfine times cmds side by side and returns their timings in ms.
func hyperfine(c config, name string, cmds []command) ([]timing, error) {
	export := filepath.Join(c.work, name+".json")
	args := []string{"--runs", strconv.Itoa(c.runs), "--warmup", strconv.Itoa(c.warmup), "--export-json", export, "--style", "basic"}
	for _, cm := range cmds {
		args = append(args, "-n", cm.name, cm.cmd)
	}
	cmd := exec.Command("hyperfine", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hyperfine: %w", err)
	}
	raw, err := os.ReadFile(export)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Results []struct {
			Command                        string
			Mean, Stddev, Median, Min, Max float64
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("hyperfine: %s: %w", export, err)
	}
	var out []timing
	for _, r := range doc.Results {
		out = append(out, timing{Name: r.Command, Median: r.Median * 1e3, Mean: r.Mean * 1e3, Sigma: r.Stddev * 1e3, Min: r.Min * 1e3, Max: r.Max * 1e3})
	}
	return out, nil
}

// memory is the resident size of a session holding the full container,
// of its box process and of the box's PID 1, in MB (VmRSS, and PSS, which
// shares the binary's pages among the processes mapping it).
type memory struct {
	SessionRSS, SessionPSS float64
	BoxRSS, BoxPSS         float64
	InitRSS, InitPSS       float64
}

// measureMemory starts `stepbox run -`, feeds it the full container (but
// not its teardown) and reads /proc once the box is built.
func measureMemory(c config, fx *fixture) (memory, error) {
	var m memory
	ready := filepath.Join(c.work, "ready")
	cmd := exec.Command(c.stepbox, "--state-dir", fx.state, "run", "-")
	cmd.Stdin = strings.NewReader(fullContainer + "!touch " + ready + "\n!sleep 30\n")
	if err := cmd.Start(); err != nil {
		return m, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		exec.Command(c.stepbox, "--state-dir", fx.state, "cleanup").Run()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("the session never built its box")
		}
		time.Sleep(20 * time.Millisecond)
	}
	session := cmd.Process.Pid
	box := childNamed(session, "stepbox-box")
	if box == 0 {
		return m, fmt.Errorf("no box process under session %d", session)
	}
	init := childNamed(box, "stepbox-init")
	if init == 0 {
		return m, fmt.Errorf("no PID 1 under box process %d", box)
	}
	m.SessionRSS, m.SessionPSS = resident(session)
	m.BoxRSS, m.BoxPSS = resident(box)
	m.InitRSS, m.InitPSS = resident(init)
	return m, nil
}

// childNamed returns the first child of pid whose first argument is arg:
// the box process and PID 1 retitle themselves "stepbox-box NAME" and
// "stepbox-init NAME".
// Each thread lists the children it started: a Go program starts them
// from any of its threads.
func childNamed(pid int, arg string) int {
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var raw []byte
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		raw = append(append(raw, b...), ' ')
	}
	for _, f := range strings.Fields(string(raw)) {
		child, _ := strconv.Atoi(f)
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		args := strings.Split(string(cl), "\x00")
		if args[0] == arg {
			return child
		}
	}
	return 0
}

// resident reads VmRSS and Pss of pid, in MB.
func resident(pid int) (rss, pss float64) {
	field := func(file, name string) float64 {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				return kb / 1024
			}
		}
		return 0
	}
	return field("status", "VmRSS"), field("smaps_rollup", "Pss")
}

// goBench is one `go test -bench` run.
type goBench struct{ pkg, pattern, benchtime string }

var goBenches = []goBench{
	{"./primitives/", "ContainerSteps", ""},
	{"./primitives/", "FiftyBoxes", "1x"},
	{"./primitives/rootfs/", "OverlayPivotProc|ReadStackFiles1000", "30x"},
	{"./primitives/images/", "LoadHundredMBImage", "3x"},
	{"./repl/", ".", "10x"},
	{"./viz/", ".", "200x"},
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

// goBenchmarks runs the packages' benchmarks and returns every reported
// value by benchmark and unit.
func goBenchmarks(c config) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, gb := range goBenches {
		bt := gb.benchtime
		if bt == "" {
			bt = c.benchtime
		}
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", gb.pattern, "-benchtime", bt, "-count", "1", gb.pkg)
		var buf bytes.Buffer
		cmd.Stdout = &buf
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		os.Stderr.Write(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("go test -bench %s %s: %w", gb.pattern, gb.pkg, err)
		}
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			m := benchLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			vals := map[string]float64{}
			f := strings.Fields(m[4])
			for i := 0; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err == nil {
					vals[f[i+1]] = v
				}
			}
			out[m[1]] = vals
		}
	}
	return out, nil
}
