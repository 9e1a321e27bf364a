package probe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeFinitModule calls finit_module(2) on descriptor -1: the kernel
// checks CAP_SYS_MODULE (and seccomp) before it looks at the descriptor,
// so EBADF means a real module would have loaded into the host's kernel.
func probeFinitModule(Host) Result {
	err := unix.FinitModule(-1, "", 0)
	if errors.Is(err, unix.EBADF) {
		return open("load", "finit_module(-1, \"\", 0): EBADF, after the CAP_SYS_MODULE check")
	}
	if errors.Is(err, unix.ENOSYS) {
		return closed("nomodules", "finit_module: ENOSYS: this kernel loads no modules (or a seccomp filter answers ENOSYS)")
	}
	return closed("load", "finit_module(-1, \"\", 0): %v", err)
}

// probeDmesg reads the host's kernel log (syslog(2), SYSLOG_ACTION_READ_ALL).
func probeDmesg(Host) Result {
	buf := make([]byte, 4096)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err == nil {
		return open("syslog", "syslog(SYSLOG_ACTION_READ_ALL) read %d bytes of the host's kernel log", n)
	}
	f, kerr := openChecked("/dev/kmsg", unix.O_RDONLY, want{dev: kmsg.Dev})
	if kerr == nil {
		defer f.Close()
		return open("kmsg", "/dev/kmsg opened for reading (syslog: %v)", err)
	}
	var nk *notKernelError
	if errors.As(kerr, &nk) {
		return closed("syslog", "syslog(SYSLOG_ACTION_READ_ALL): %v; %v: not opened", err, kerr)
	}
	return closed("syslog", "syslog(SYSLOG_ACTION_READ_ALL): %v", err)
}

// maxKallsyms bounds what the kallsyms probe reads: the first text
// symbols come within the first lines.
const maxKallsyms = 1 << 20

// probeKallsyms reads /proc/kallsyms: the kernel shows real addresses
// only to a reader it trusts (kptr_restrict, CAP_SYSLOG in the initial
// user namespace), which defeats KASLR. A file the box put there (a
// FIFO, /dev/null) says nothing of the kernel's: it is reported as such.
func probeKallsyms(Host) Result {
	f, err := openChecked("/proc/kallsyms", unix.O_RDONLY, procFile)
	if nk := (*notKernelError)(nil); errors.As(err, &nk) {
		return unknown("notkernel", "%v; nothing read", nk)
	}
	if err != nil {
		return closed("read", "open /proc/kallsyms: %v", err)
	}
	defer f.Close()
	// A text symbol (T, t): per-CPU symbols (A) are offsets, not addresses.
	s := bufio.NewScanner(io.LimitReader(f, maxKallsyms))
	for i := 0; i < 4096 && s.Scan(); i++ {
		fields := strings.Fields(s.Text())
		if len(fields) >= 3 && (fields[1] == "T" || fields[1] == "t") {
			if strings.Trim(fields[0], "0") != "" {
				return open("read", "/proc/kallsyms shows kernel addresses: %.60s", s.Text())
			}
			return closed("read", "/proc/kallsyms shows every address as 0")
		}
	}
	return closed("read", "/proc/kallsyms shows no text symbol")
}

// probePtrace opens the memory of PID 1 for reading and reads a few
// bytes of a mapping /proc/1/maps names: the kernel asks the same
// question as PTRACE_ATTACH (PTRACE_MODE_ATTACH), and nothing in the
// target changes. In a PID namespace of the box's own, PID 1 is
// stepbox's executor, which holds its socket to the session: a box
// command that reads or traces it can forge the replies the session acts
// on, so it is a hole there too.
func probePtrace(h Host) Result {
	via, whose := "mem", "the host's init"
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err == nil && h.PIDNS != 0 && st.Ino != h.PIDNS {
		via, whose = "init", "stepbox's executor (the box's PID 1, holding its socket to the session)"
	}
	mem, err := openChecked("/proc/1/mem", unix.O_RDONLY, procFile)
	if nk := (*notKernelError)(nil); errors.As(err, &nk) {
		return unknown("notkernel", "%v: the memory of %s not tried", nk, whose)
	}
	if err != nil {
		return closed("mem", "open(/proc/1/mem, O_RDONLY), the memory of %s: %v", whose, err)
	}
	defer mem.Close()
	fd := int(mem.Fd())
	addr, err := firstMapping("/proc/1/maps")
	if err != nil {
		return open(via, "opened the memory of %s for reading (/proc/1/mem): PTRACE_MODE_ATTACH granted; %v", whose, err)
	}
	buf := make([]byte, 8)
	n, err := unix.Pread(fd, buf, int64(addr))
	if err != nil {
		return open(via, "opened the memory of %s for reading (/proc/1/mem): PTRACE_MODE_ATTACH granted; pread at %#x: %v", whose, addr, err)
	}
	return open(via, "read %d bytes (%x) at %#x of the memory of %s through /proc/1/mem: PTRACE_MODE_ATTACH granted", n, buf[:n], addr, whose)
}

// firstMapping is the start of the first readable mapping in a maps file.
func firstMapping(maps string) (uint64, error) {
	data, err := readSome(maps, 4096, procFile)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", maps, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[1], "r") {
			continue
		}
		start, _, _ := strings.Cut(f[0], "-")
		if a, err := strconv.ParseUint(start, 16, 64); err == nil && a <= math.MaxInt64 {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%s names no readable mapping", maps)
}
