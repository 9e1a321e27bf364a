package cgroups

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is one reading of a cgroup's limits and usage. A section is nil
// when the cgroup has no such controller.
type Stats struct {
	Memory *MemoryStats `json:"memory,omitempty"`
	Pids   *PidsStats   `json:"pids,omitempty"`
	CPU    *CPUStats    `json:"cpu,omitempty"`
}

// MemoryStats comes from memory.current, memory.max and memory.events in
// v2; memory.usage_in_bytes, memory.limit_in_bytes, memory.failcnt and
// memory.oom_control in v1.
type MemoryStats struct {
	Current   int64 `json:"current"`    // bytes charged now
	Max       int64 `json:"max"`        // the limit in bytes, or Unlimited
	LimitHits int64 `json:"limit_hits"` // times usage hit the limit (v2 events "max", v1 failcnt)
	OOM       int64 `json:"oom"`        // times the cgroup ran out of memory (v2 only)
	OOMKill   int64 `json:"oom_kill"`   // processes the OOM killer killed in it
}

// PidsStats comes from pids.current, pids.max and pids.events.
type PidsStats struct {
	Current int64 `json:"current"` // tasks now
	Max     int64 `json:"max"`     // the limit, or Unlimited
	Refused int64 `json:"refused"` // fork/clone calls refused at the limit (pids.events "max")
}

// CPUStats comes from cpu.stat and cpu.max in v2; cpuacct.usage, cpu.stat,
// cpu.cfs_quota_us and cpu.cfs_period_us in v1.
type CPUStats struct {
	UsageUsec     int64 `json:"usage_usec"`     // CPU time used
	Periods       int64 `json:"nr_periods"`     // enforcement periods that had runnable tasks
	Throttled     int64 `json:"nr_throttled"`   // periods in which the quota ran out
	ThrottledUsec int64 `json:"throttled_usec"` // time spent throttled
	QuotaUsec     int64 `json:"quota_usec"`     // CPU time allowed per period, or Unlimited
	PeriodUsec    int64 `json:"period_usec"`    // length of a period
}

// v1Unlimited: v1 reports "no memory limit" as the largest page-aligned
// counter (9223372036854771712 with 4K pages), not as -1.
const v1Unlimited = int64(1) << 62

func (l *legacy) Stats(g *Group) (Stats, error) {
	if g == nil {
		return Stats{}, ErrNoGroup
	}
	var st Stats
	var err error
	if d, ok := g.dir(Memory); ok && exists(filepath.Join(d.Path, "memory.limit_in_bytes")) {
		st.Memory, err = memoryV1(d.Path)
		if err != nil {
			return Stats{}, err
		}
	}
	if d, ok := g.dir(Pids); ok && exists(filepath.Join(d.Path, "pids.max")) {
		st.Pids, err = pidsStats(d.Path)
		if err != nil {
			return Stats{}, err
		}
	}
	if d, ok := g.dir(CPU); ok && exists(filepath.Join(d.Path, "cpu.cfs_quota_us")) {
		st.CPU, err = cpuV1(d.Path)
		if err != nil {
			return Stats{}, err
		}
		if acct, ok := g.dir("cpuacct"); ok {
			ns, err := readInt(filepath.Join(acct.Path, "cpuacct.usage"))
			if err != nil {
				return Stats{}, err
			}
			st.CPU.UsageUsec = ns / 1000
		}
	}
	return st, nil
}

func memoryV1(dir string) (*MemoryStats, error) {
	var m MemoryStats
	var err error
	if m.Current, err = readInt(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
		return nil, err
	}
	if m.Max, err = readInt(filepath.Join(dir, "memory.limit_in_bytes")); err != nil {
		return nil, err
	}
	if m.Max >= v1Unlimited {
		m.Max = Unlimited
	}
	if m.LimitHits, err = readInt(filepath.Join(dir, "memory.failcnt")); err != nil {
		return nil, err
	}
	oom, err := readKeyed(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	m.OOMKill = oom["oom_kill"]
	return &m, nil
}

func cpuV1(dir string) (*CPUStats, error) {
	var c CPUStats
	var err error
	if c.QuotaUsec, err = readInt(filepath.Join(dir, "cpu.cfs_quota_us")); err != nil {
		return nil, err
	}
	if c.PeriodUsec, err = readInt(filepath.Join(dir, "cpu.cfs_period_us")); err != nil {
		return nil, err
	}
	stat, err := readKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return nil, err
	}
	c.Periods, c.Throttled = stat["nr_periods"], stat["nr_throttled"]
	c.ThrottledUsec = stat["throttled_time"] / 1000 // v1 counts nanoseconds
	return &c, nil
}

// pidsStats reads the pids controller, the same in v1 and v2.
func pidsStats(dir string) (*PidsStats, error) {
	var p PidsStats
	var err error
	if p.Current, err = readInt(filepath.Join(dir, "pids.current")); err != nil {
		return nil, err
	}
	if p.Max, err = readInt(filepath.Join(dir, "pids.max")); err != nil {
		return nil, err
	}
	ev, err := readKeyed(filepath.Join(dir, "pids.events"))
	if err != nil {
		return nil, err
	}
	p.Refused = ev["max"]
	return &p, nil
}

func statsV2(dir string) (Stats, error) {
	var st Stats
	if exists(filepath.Join(dir, "memory.max")) {
		var m MemoryStats
		var err error
		if m.Current, err = readInt(filepath.Join(dir, "memory.current")); err != nil {
			return Stats{}, err
		}
		if m.Max, err = readInt(filepath.Join(dir, "memory.max")); err != nil {
			return Stats{}, err
		}
		ev, err := readKeyed(filepath.Join(dir, "memory.events"))
		if err != nil {
			return Stats{}, err
		}
		m.LimitHits, m.OOM, m.OOMKill = ev["max"], ev["oom"], ev["oom_kill"]
		st.Memory = &m
	}
	if exists(filepath.Join(dir, "pids.max")) {
		p, err := pidsStats(dir)
		if err != nil {
			return Stats{}, err
		}
		st.Pids = p
	}
	if exists(filepath.Join(dir, "cpu.max")) {
		c, err := cpuV2(dir)
		if err != nil {
			return Stats{}, err
		}
		st.CPU = c
	}
	return st, nil
}

func cpuV2(dir string) (*CPUStats, error) {
	stat, err := readKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return nil, err
	}
	c := CPUStats{UsageUsec: stat["usage_usec"], Periods: stat["nr_periods"], Throttled: stat["nr_throttled"], ThrottledUsec: stat["throttled_usec"]}
	text, err := readFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return nil, err
	}
	quota, period, ok := strings.Cut(text, " ")
	if !ok {
		return nil, fmt.Errorf("read %s: want \"QUOTA PERIOD\", got %q", filepath.Join(dir, "cpu.max"), text)
	}
	if c.QuotaUsec, err = parseMax(quota); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, "cpu.max"), err)
	}
	if c.PeriodUsec, err = strconv.ParseInt(period, 10, 64); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, "cpu.max"), err)
	}
	return &c, nil
}

// readInt reads a control file holding one number or "max".
func readInt(path string) (int64, error) {
	s, err := readFile(path)
	if err != nil {
		return 0, err
	}
	n, err := parseMax(s)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}

func parseMax(s string) (int64, error) {
	if s == "max" {
		return Unlimited, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKeyed reads a flat keyed file ("key value" lines: cpu.stat,
// memory.events, pids.events, memory.oom_control).
func readKeyed(path string) (map[string]int64, error) {
	s, err := readFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read %s: %s: %w", path, k, err)
		}
		m[k] = n
	}
	return m, nil
}
