package primitives

import (
	"strconv"
	"strings"
	"testing"
)

// The kernel reads cgroup.procs with kstrtoint(buf, 0): each value here
// is either refused or read as the kernel reads it.
func TestParsePIDReadsOnlyWhatTheKernelReadsAlike(t *testing.T) {
	for in, want := range map[string]int{
		"17": 17, " 17\n": 17, "4194304": 4194304,
		"017": 0, "0x11": 0, "0X11": 0, "0": 0, "+17": 0, "-1": 0, "1e3": 0, "١٧": 0,
		"": 0, "17 18": 0, "99999999": 0, "\x0017": 0, strings.Repeat("1", 5000): 0,
	} {
		got, err := ParsePID(in)
		if want == 0 {
			if err == nil {
				t.Errorf("ParsePID(%q) = %d; the kernel reads it otherwise or not at all, so it must be refused", in, got)
			} else if len(err.Error()) > 300 {
				t.Errorf("ParsePID(%q): the error repeats the input whole (%d bytes)", in[:10], len(err.Error()))
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParsePID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// "0" + the box's PID passed a check that read it as decimal; the kernel
// reads it as octal, another process's PID.
func TestCgroupSetRefusesAPIDTheKernelReadsOtherwise(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("pidfmt", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CgroupNew(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(b.PID())
	if octal, err := strconv.ParseInt(pid, 8, 64); err == nil && pidAlive(int(octal)) {
		t.Skipf("PID %d (0%s read as octal) is alive: writing it would move it", octal, pid)
	}
	_, err = b.CgroupSet("cgroup.procs", "0"+pid)
	if err == nil || !strings.Contains(err.Error(), "plain decimal") {
		t.Fatalf("cgroup set cgroup.procs 0%s: want a refusal naming the form, got %v", pid, err)
	}
	h, _ := s.Cgroups()
	if procs, err := h.Procs(b.Cgroup()); err != nil || len(procs) != 0 {
		t.Fatalf("the box's cgroup holds %v after a refused write (%v)", procs, err)
	}
	if _, err := b.CgroupSet("cgroup.procs", pid+"\n"); err != nil {
		t.Fatalf("cgroup set cgroup.procs %s: %v", pid, err)
	}
	if procs, _ := h.Procs(b.Cgroup()); len(procs) != 1 || procs[0] != b.PID() {
		t.Fatalf("the box's cgroup holds %v, want [%d]", procs, b.PID())
	}
}
