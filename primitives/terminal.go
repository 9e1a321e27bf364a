package primitives

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Terminal is the learner's terminal with the settings it had when
// stepbox started. go-prompt v0.2.6 can leave a terminal in raw mode
// (it restores what it saw, which may already be raw), so stepbox saves
// the settings itself before go-prompt starts and puts them back before
// `sh`, on exit, on signals and on a panic.
type Terminal struct {
	File  *os.File
	saved *unix.Termios
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// NullDevice says whether f is /dev/null (character device 1:3).
func NullDevice(f *os.File) bool {
	var st unix.Stat_t
	if f == nil || unix.Fstat(int(f.Fd()), &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
}

// OpenTerminal saves f's settings.
func OpenTerminal(f *os.File) (*Terminal, error) {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("ioctl(TCGETS) on %s: %w", f.Name(), err)
	}
	return &Terminal{File: f, saved: t}, nil
}

// Restore puts back the settings saved at start.
func (t *Terminal) Restore() error {
	if t == nil {
		return nil
	}
	return unix.IoctlSetTermios(int(t.File.Fd()), unix.TCSETS, t.saved)
}

// Width returns the terminal's width in columns, or 0.
func (t *Terminal) Width() int {
	if t == nil {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(t.File.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
