package probe

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// probeTIOCSTI asks whether the box may push input into a terminal:
// ioctl(fd, TIOCSTI, NULL) on each of its standard descriptors that is a
// terminal, and on its controlling terminal (/dev/tty) if it has one.
// The kernel checks legacy_tiocsti and "the terminal is the caller's
// controlling one, or CAP_SYS_ADMIN" before it reads the character, so
// EFAULT means a real character would have been typed into the session's
// terminal (stepbox's prompt), and nothing was (tty_ioctl(4),
// CVE-2017-5226).
func probeTIOCSTI(Host) Result {
	ctty := controllingTTY()
	var tried []string
	try := func(fd int, name string) (Result, bool) {
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
			return Result{}, false
		}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, 0)
		if errno == unix.EFAULT {
			return open("inject", "ioctl(%s, TIOCSTI, NULL): EFAULT, after the permission check: a character would have been typed into that terminal (controlling terminal %s)", name, ctty), true
		}
		tried = append(tried, fmt.Sprintf("ioctl(%s, TIOCSTI, NULL): %v", name, errno))
		return Result{}, false
	}
	for fd := 0; fd <= 2; fd++ {
		if r, ok := try(fd, fmt.Sprint(fd)); ok {
			return r
		}
	}
	if ctty != "none" {
		if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
			r, ok := try(fd, "/dev/tty")
			unix.Close(fd)
			if ok {
				return r
			}
		}
	}
	if len(tried) == 0 {
		return closed("noterminal", "no terminal to try; controlling terminal: %s", ctty)
	}
	return closed("inject", "%s; controlling terminal: %s", strings.Join(tried, "; "), ctty)
}

// controllingTTY is the tty_nr of /proc/self/stat as major:minor, or
// "none" (proc(5)).
func controllingTTY() string {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	// The fields after the command name, which may hold spaces: state,
	// ppid, pgrp, session, tty_nr.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 5 {
		return "unknown"
	}
	var nr uint64
	fmt.Sscan(f[4], &nr)
	if nr == 0 {
		return "none"
	}
	return fmt.Sprintf("%d:%d (session %s)", unix.Major(nr), unix.Minor(nr), f[3])
}
