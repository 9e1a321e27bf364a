package primitives

import "golang.org/x/sys/unix"

// What lecture playback (`stepbox demo`) needs of the terminal beyond
// terminal.go: its height, for recordings, and single key presses.

// Height returns the terminal's height in rows, or 0.
func (t *Terminal) Height() int {
	if t == nil {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(t.File.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Row)
}

// ReadKey waits for one key press, with neither echo nor Enter (ICANON
// and ECHO off, termios(3)), and returns its bytes: an arrow or a
// presenter's clicker sends several. Keys pressed before it was called
// are dropped (tcflush(3)), and Ctrl-C arrives as the key 0x03 (ISIG
// off), so the demo can stop at once. Afterwards the terminal is left
// quiet (see Quiet).
func (t *Terminal) ReadKey() ([]byte, error) {
	fd := int(t.File.Fd())
	raw := *t.saved
	raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	defer t.Quiet()
	buf := make([]byte, 16)
	n, err := t.File.Read(buf)
	return buf[:n], err
}

// Quiet turns off the echo of what is typed, as a demo on a projector
// wants: keys pressed while it types a command would otherwise appear
// in the middle of it. Restore turns the echo back on.
func (t *Terminal) Quiet() error {
	q := *t.saved
	q.Lflag &^= unix.ECHO
	return unix.IoctlSetTermios(int(t.File.Fd()), unix.TCSETS, &q)
}
