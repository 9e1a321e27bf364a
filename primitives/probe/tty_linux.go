package probe

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// probeTIOCSTI asks whether the box holds a terminal that is not its
// own: on each standard descriptor that is a terminal, and on its
// controlling terminal (/dev/tty) if it has one. A terminal the box's
// session owns (TIOCGSID answers with its own session: a pty stepbox made
// for `sh`) is the box's alone; any other is the learner's, whose
// settings and window size the box may change and whose keys it may
// read with no capability at all ("terminal"). On such a terminal
// ioctl(TIOCSTI, NULL) tells whether it may also type into it: the kernel
// checks legacy_tiocsti and "the caller's controlling terminal, or
// CAP_SYS_ADMIN" before it reads the character, so EFAULT is a permission
// granted and nothing is typed (tty_ioctl(4), CVE-2017-5226).
func probeTIOCSTI(Host) Result {
	ctty := controllingTTY()
	var seen []string
	foreign := func(fd int, name string) (Result, bool) {
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
			return Result{}, false
		}
		sid, err := unix.IoctlGetInt(fd, unix.TIOCGSID)
		if mine, _ := unix.Getsid(0); err == nil && sid == mine {
			seen = append(seen, name+" is the box's own terminal (its session's)")
			return Result{}, false
		}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, 0)
		if errno == unix.EFAULT {
			return open("inject", "ioctl(%s, TIOCSTI, NULL): EFAULT, after the permission check: a character would have been typed into that terminal, not the box's own (controlling terminal %s)", name, ctty), true
		}
		return open("terminal", "%s (%s) is a terminal not of the box's own: the box may change its settings and window size and read what is typed at it; ioctl(%s, TIOCSTI, NULL): %v (controlling terminal %s)", name, fdTarget(fd), name, errno, ctty), true
	}
	for fd := 0; fd <= 2; fd++ {
		if r, ok := foreign(fd, fmt.Sprint(fd)); ok {
			return r
		}
	}
	if ctty != "none" {
		if f, err := openChecked("/dev/tty", unix.O_RDWR, want{dev: unix.Mkdev(5, 0)}); err == nil {
			r, ok := foreign(int(f.Fd()), "/dev/tty")
			f.Close()
			if ok {
				return r
			}
		}
	}
	fds := fmt.Sprintf("fds 0-2: %s, %s, %s", fdTarget(0), fdTarget(1), fdTarget(2))
	if len(seen) == 0 {
		return closed("noterminal", "no terminal to try (%s); controlling terminal: %s", fds, ctty)
	}
	return closed("own", "%s; %s; controlling terminal: %s", strings.Join(seen, "; "), fds, ctty)
}

// fdTarget is what /proc/self/fd/N names: a device, pipe:[…], /dev/null.
func fdTarget(fd int) string {
	t, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "none"
	}
	return t
}

// controllingTTY is the tty_nr of /proc/self/stat as major:minor, or
// "none" (proc(5)).
func controllingTTY() string {
	b, err := readChecked("/proc/self/stat", 4096, procFile)
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
