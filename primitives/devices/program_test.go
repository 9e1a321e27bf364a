package devices

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// cgroup2Root finds where cgroup v2 is mounted: /sys/fs/cgroup on a v2
// host, /sys/fs/cgroup/unified on a hybrid one. Device programs attach
// to v2 cgroups on both.
func cgroup2Root(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if i := slices.Index(fields, "-"); i > 0 && i+1 < len(fields) && fields[i+1] == "cgroup2" {
			return fields[4]
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

// The rules compiled into an eBPF program and attached to a cgroup of
// the test's own decide what a process in that cgroup may open, as the
// rules say: the kernel runs the program on every open and mknod.
func TestDeviceProgramRefusesWhatTheRulesRefuse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("stepbox-devtest-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	prog, err := Load(Docker())
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := Attach(dir, prog, 0); err != nil {
		t.Fatal(err)
	}
	info, _ := prog.Info()
	id, _ := info.ID()
	ids, err := Attached(dir)
	if err != nil || !slices.Contains(ids, id) {
		t.Fatalf("BPF_PROG_QUERY on %s: %v, %v; want program %d", dir, ids, err, id)
	}
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	open := func(dev string) error {
		cmd := exec.Command("/bin/sh", "-c", "head -c1 "+dev+" >/dev/null")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := open("/dev/zero"); err != nil {
		t.Errorf("/dev/zero (c 1:5, allowed): %v", err)
	}
	if _, err := os.Stat("/dev/kmsg"); err == nil {
		if err := open("/dev/kmsg"); err == nil || !strings.Contains(err.Error(), "not permitted") {
			t.Errorf("/dev/kmsg (c 1:11, not in Docker's list): %v, want EPERM", err)
		}
	}
	if err := Detach(dir, id); err != nil {
		t.Fatal(err)
	}
	if ids, _ := Attached(dir); slices.Contains(ids, id) {
		t.Errorf("program %d still attached after detach", id)
	}
}
