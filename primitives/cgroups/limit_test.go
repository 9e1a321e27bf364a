package cgroups

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParseLimitTranslatesUnits(t *testing.T) {
	for _, c := range []struct {
		kind, value string
		want        int64
	}{
		{Memory, "64M", 64 << 20},
		{Memory, "1G", 1 << 30},
		{Memory, "2g", 2 << 30},
		{Memory, "16777216", 16 << 20},
		{Memory, "max", Unlimited},
		{Pids, "20", 20},
		{Pids, "max", Unlimited},
		{CPU, "50%", 50},
		{CPU, "max", Unlimited},
	} {
		v, err := parseLimit(c.kind, c.value)
		if err != nil || v.n != c.want {
			t.Errorf("parseLimit(%s, %s) = %d, %v; want %d", c.kind, c.value, v.n, err, c.want)
		}
	}
	if got := cpuQuota(50); got != 50000 {
		t.Errorf("cpuQuota(50) = %d, want 50000 of a 100000us period", got)
	}
}

func TestParseLimitSaysWhatIsAllowed(t *testing.T) {
	most := strconv.Itoa(100*runtime.NumCPU()) + "%"
	for _, c := range []struct{ kind, value, want string }{
		{Memory, "64MB", "use bytes or a size with K, M, G or T"},
		{Memory, "50%", "use bytes or a size"},
		{Memory, "512K", "at least 16M"},
		{Memory, "8M", "at least 16M"},
		{Memory, "-1", "not a size"},
		{Memory, "99999999999T", "too large"},
		{Pids, "0", "from 1 to 4194304"},
		{Pids, "20M", "whole number"},
		{Pids, "5000000", "from 1 to 4194304"},
		{CPU, "50", "percentage of one CPU"},
		{CPU, "0%", "1% to " + most},
		{CPU, strconv.Itoa(100*runtime.NumCPU()+1) + "%", "1% to " + most},
		{"io", "10M", "unknown controller; use memory, pids, cpu"},
	} {
		_, err := parseLimit(c.kind, c.value)
		if !errors.Is(err, ErrBadLimit) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "cgroup limit "+c.kind) {
			t.Errorf("parseLimit(%s, %s): err = %v, want ErrBadLimit naming the command and %q", c.kind, c.value, err, c.want)
		}
	}
}
