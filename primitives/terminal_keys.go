package primitives

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// keysQueued bounds what the relay holds of the learner's keys for a
// box whose terminal takes no more for now: its program is not reading,
// or reads slower than a paste arrives, and the pty's input queue (some
// 18 KiB with echo) is full. The relay never waits on the box's
// terminal, so that it still reads the learner's keys, the detach keys
// and Ctrl-C among them, however much was pasted before them (ut28 F3).
// The bound is far above a paste a program that reads takes whole;
// keys past it are dropped, with a note to the learner.
const keysQueued = 4 << 20

// noteKeysDropped is that note: the learner's terminal is raw, hence
// the carriage returns.
var noteKeysDropped = fmt.Sprintf("\r\n! stepbox: the box's terminal takes no more input (its program is not reading it): what you type or paste past %d MiB is dropped until it does; Ctrl-C and %s still work\r\n", keysQueued>>20, DetachKeys)

// keys copies what the learner types to the master until stopped, or
// until the detach keys, which it keeps from the box. It polls first,
// so that it never sits in a read(2) of the learner's terminal once the
// command is over: the next key is the prompt's. It never blocks on the
// master either: what the box's terminal does not take waits in
// p.queued, written when poll says the master takes more.
func (p *boxTerminal) keys() {
	fd := int(p.learner.File.Fd())
	buf := make([]byte, 4096)
	var d detachKeys
	var expireAt time.Time
	for {
		timeout := -1
		if d.held {
			timeout = max(int(time.Until(expireAt)/time.Millisecond), 0)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(p.wake[0]), Events: unix.POLLIN}}
		if len(p.queued) > 0 {
			fds = append(fds, unix.PollFd{Fd: int32(p.masterFd), Events: unix.POLLOUT})
		}
		_, err := unix.Poll(fds, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 {
			return
		}
		if len(fds) > 2 && fds[2].Revents != 0 {
			if fds[2].Revents&unix.POLLOUT == 0 {
				// Hung up: nothing holds the box's terminal any more,
				// nothing will read what waits for it.
				p.queued = nil
			}
			if p.writeQueued() != nil {
				return
			}
		}
		if d.held && !time.Now().Before(expireAt) {
			if p.queue(d.expire()) != nil {
				return
			}
		}
		if fds[0].Revents == 0 {
			continue
		}
		if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 && fds[0].Revents&unix.POLLIN == 0 {
			return
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		out, detach := d.feed(buf[:n])
		if d.held {
			expireAt = time.Now().Add(detachWait)
		}
		if p.queue(out) != nil {
			return
		}
		if detach {
			close(p.detached)
			return
		}
	}
}

// queue puts keys for the box behind those its terminal has not taken
// yet and writes what it takes now. A key that the box's terminal
// makes a signal (Ctrl-C, Ctrl-\, Ctrl-Z) and that would wait behind
// keys the box is not reading is sent as its signal at once
// (signalQueued); past keysQueued, keys are dropped.
func (p *boxTerminal) queue(keys []byte) error {
	if len(keys) == 0 {
		return nil
	}
	p.queued = append(p.queued, keys...)
	if err := p.writeQueued(); err != nil || len(p.queued) == 0 {
		return err
	}
	if p.signalQueued(max(len(p.queued)-len(keys), 0)) {
		if err := p.writeQueued(); err != nil {
			return err
		}
	}
	if len(p.queued) > keysQueued {
		p.queued = p.queued[:keysQueued]
		if !p.dropping {
			p.dropping = true
			p.learner.File.Write([]byte(noteKeysDropped))
		}
	}
	return nil
}

// writeQueued writes to the master what of p.queued it takes without
// waiting.
func (p *boxTerminal) writeQueued() error {
	if len(p.queued) == 0 {
		return nil
	}
	c, err := p.master.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var werr error
	// true: done, whatever write(2) said; never wait in Go's poller.
	if err := c.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), p.queued)
		return true
	}); err != nil {
		return err
	}
	switch werr {
	case nil:
		// The next append that outgrows the array copies only what is
		// left: amortized, however small the pty's writes.
		p.queued = p.queued[n:]
	case unix.EAGAIN, unix.EINTR:
	default:
		return fmt.Errorf("write(/dev/ptmx): %w", werr)
	}
	if len(p.queued) == 0 {
		p.dropping = false
	}
	return nil
}

// signalQueued sends at once, with TIOCSIG (tty_ioctl(4)), the signal of
// each key of p.queued[from:] that the box's terminal would make one:
// written, it would wait behind keys its program is not reading. As
// the line discipline does for a signal key (termios(3), NOFLSH), what
// the box had not read before it is dropped: here, in the pty's input
// queue too. It reports whether it sent any.
func (p *boxTerminal) signalQueued(from int) bool {
	c, err := p.master.SyscallConn()
	if err != nil {
		return false
	}
	var tio *unix.Termios
	// TCGETS on a pty master reads the slave's settings.
	c.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	if err != nil || tio.Lflag&unix.ISIG == 0 {
		return false
	}
	sent := false
	kept := p.queued[:from]
	for _, k := range p.queued[from:] {
		sig := keySignal(tio, k)
		if sig == 0 {
			kept = append(kept, k)
			continue
		}
		flush := tio.Lflag&unix.NOFLSH == 0
		if flush {
			// Before the signal: the line discipline flushes under a
			// lock no reader gets past, but here the shell the signal
			// wakes (its sleep killed) would read the paste first.
			p.flushBoxInput()
		}
		c.Control(func(fd uintptr) { err = unix.IoctlSetInt(int(fd), unix.TIOCSIG, int(sig)) })
		if err != nil {
			// The key waits its turn, as it did before the relay sent
			// signals itself.
			kept = append(kept, k)
			continue
		}
		sent = true
		if flush {
			kept = kept[:0]
		}
	}
	p.queued = kept
	return sent
}

// keySignal is the signal the terminal's settings make of key, or 0.
func keySignal(tio *unix.Termios, key byte) syscall.Signal {
	// A control character set to 0 (_POSIX_VDISABLE) is off.
	switch {
	case key == 0:
		return 0
	case key == tio.Cc[unix.VINTR]:
		return unix.SIGINT
	case key == tio.Cc[unix.VQUIT]:
		return unix.SIGQUIT
	case key == tio.Cc[unix.VSUSP]:
		return unix.SIGTSTP
	}
	return 0
}

// flushBoxInput drops what waits in the box's terminal's input queue:
// tcflush(TCIFLUSH) on the slave, by the master's descriptor
// (TIOCGPTPEER), since on the master it flushes the other way. Should
// it fail, the box still reads what was typed before the signal key,
// as it would with no relay: nothing to undo.
func (p *boxTerminal) flushBoxInput() {
	c, err := p.master.SyscallConn()
	if err != nil {
		return
	}
	c.Control(func(fd uintptr) {
		sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK)
		if errno != 0 {
			return
		}
		unix.IoctlSetInt(int(sfd), unix.TCFLSH, unix.TCIFLUSH)
		unix.Close(int(sfd))
	})
}
