package primitives

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// boxTerminal is a terminal of a box command's own, as `docker run -t`
// gives a container: a pty pair from the host's /dev/ptmx. The command
// gets the slave as fds 0-2 and as its controlling terminal; the session
// relays the master to the learner's terminal, in raw mode, until the
// command ends, then closes the master: whatever the box left holding
// the slave reads EOF/EIO and gets SIGHUP, never the learner's keys
// (pty(7), tty_ioctl(4)).
type boxTerminal struct {
	learner  *Terminal
	master   *os.File
	masterFd int      // for poll(2) only: reads and writes go through master
	slave    *os.File // the session's copy, closed once sent
	raw      *term.State
	winch    chan os.Signal
	wake     [2]int // a pipe that stops the relay of the learner's keys
	stop     chan struct{}
	wg       sync.WaitGroup
	// detached is closed when the learner presses the detach keys.
	detached chan struct{}
	// lastOut is the last byte the box's terminal wrote to the learner's.
	lastOut byte
	// origin watches that output for origin mode (resetModes).
	origin originWatch
	// queued is what the learner typed that the box's terminal has not
	// taken yet (terminal_keys.go); dropping is set once keys past
	// keysQueued were dropped, until it has taken them all.
	queued   []byte
	dropping bool
}

// openBoxTerminal makes the pty pair, sized as the learner's terminal.
// The master stays non-blocking, in Go's poller (never Fd(), which would
// make it blocking): its reads take a deadline, so a process the box
// left holding the slave cannot hold up the session.
func openBoxTerminal(t *Terminal) (*boxTerminal, error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open(/dev/ptmx) for the box command's own terminal: %w", err)
	}
	p := &boxTerminal{learner: t, masterFd: mfd, wake: [2]int{-1, -1}, stop: make(chan struct{}), detached: make(chan struct{}), lastOut: '\n'}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, fmt.Errorf("ioctl(/dev/ptmx, TIOCSPTLCK, 0): %w", err)
	}
	// The slave by the master's descriptor, never by a path another
	// process could swap (TIOCGPTPEER, Linux 4.13).
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(mfd)
		return nil, fmt.Errorf("ioctl(/dev/ptmx, TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC): %w", errno)
	}
	p.master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	p.slave = os.NewFile(uintptr(sfd), "pty slave")
	if err := p.inheritSize(); err != nil {
		p.close()
		return nil, err
	}
	if err := unix.Pipe2(p.wake[:], unix.O_CLOEXEC); err != nil {
		p.close()
		return nil, fmt.Errorf("pipe2 for the terminal relay: %w", err)
	}
	return p, nil
}

// inheritSize gives the box's terminal the learner's window size.
func (p *boxTerminal) inheritSize() error {
	ws, err := unix.IoctlGetWinsize(int(p.learner.File.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return fmt.Errorf("ioctl(%s, TIOCGWINSZ): %w", p.learner.File.Name(), err)
	}
	c, err := p.master.SyscallConn()
	if err != nil {
		return err
	}
	c.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
	if err != nil {
		return fmt.Errorf("ioctl(/dev/ptmx, TIOCSWINSZ): %w", err)
	}
	return nil
}

// relay puts the learner's terminal in raw mode (its keys, Ctrl-C
// included, go to the box's terminal, whose line discipline makes them
// signals for the box's foreground job) and copies both ways; a
// SIGWINCH passes the learner's window size on.
func (p *boxTerminal) relay() error {
	raw, err := term.MakeRaw(int(p.learner.File.Fd()))
	if err != nil {
		return fmt.Errorf("ioctl(TCSETS) raw mode on %s: %w", p.learner.File.Name(), err)
	}
	p.raw = raw
	// Before any output of the box's: close's reset pops it (modeResets).
	p.learner.File.Write([]byte(titleSave))
	p.winch = make(chan os.Signal, 1)
	signal.Notify(p.winch, syscall.SIGWINCH)
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.winch:
				p.inheritSize()
			case <-p.stop:
				return
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		p.output()
	}()
	go func() {
		defer p.wg.Done()
		p.keys()
	}()
	return nil
}

// output copies the box's terminal to the learner's, remembering the
// last byte written: the session's next line starts on a line of its own.
func (p *boxTerminal) output() {
	buf := make([]byte, 32<<10)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			if _, werr := p.learner.File.Write(buf[:n]); werr != nil {
				return
			}
			p.lastOut = buf[n-1]
			p.origin.scan(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// Detached is closed when the learner pressed the detach keys: the
// command is to be killed.
func (p *boxTerminal) Detached() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.detached
}

// closeSlave closes the session's own copy of the slave
// once it is sent to the command, so that the master reads EIO
// when the command and all it left have let go of it.
func (p *boxTerminal) closeSlave() {
	if p.slave != nil {
		p.slave.Close()
		p.slave = nil
	}
}

// drainGrace is how long the session still copies what a box command's
// terminal holds after the command ended, when something the box left
// keeps the slave open.
const drainGrace = 250 * time.Millisecond

// close ends the relay and puts the learner's terminal back as it was,
// whatever happened: the output the command wrote is copied first (up to
// drainGrace if the box left something holding the terminal), then the
// master is closed, which hangs the box's terminal up.
func (p *boxTerminal) close() {
	p.closeSlave()
	if p.raw != nil {
		p.master.SetReadDeadline(time.Now().Add(drainGrace))
		unix.Write(p.wake[1], []byte{0})
		close(p.stop)
		p.wg.Wait()
		signal.Stop(p.winch)
		term.Restore(int(p.learner.File.Fd()), p.raw)
		p.resetModes()
	}
	p.master.Close()
	for _, fd := range p.wake {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// modeResets turns off what a full-screen program may have left on in
// the learner's terminal: the alternate screen, a hidden cursor,
// application cursor keys and keypad, bracketed paste, mouse reports
// (every tracking mode and encoding, X10's ?9 and highlight's ?1001 too:
// one left on types a report into stepbox's prompt at each move of the
// mouse) and focus reports, colours (console_codes(4), xterm's ctlseqs).
// Then what garbles every later panel (ut32 F3): the line-drawing set in
// G0 and a shift to G1 (ESC ( B, SI), insert mode, autowrap off and
// reverse video; and (ut33 F1) the colours a box may redefine: a box
// that set the default foreground and background (OSC 10, 11) to one
// colour made every later line of stepbox's invisible, so the palette,
// both defaults and the cursor's colour go back to the terminal's (OSC
// 104, 110, 111, 112, ended by ST, which xterm and tmux take as they
// take BEL, and for which a terminal that knows no OSC rings no bell),
// and LNM (a line feed that also returns) and KAM (a locked keyboard) go
// off. Then (ut34 F2) an OSC 8 hyperlink the box opened is closed (OSC
// 8 ; ; ST, the hyperlink spec's end; in VTE, iTerm2, kitty, WezTerm and
// Windows Terminal every later line of stepbox's was a link to the box's
// address), and the rest goes to xterm's default (ctlseqs, and xterm(1)
// for the resource a mode sets): the cursor's shape (DECSCUSR 0, which
// VTE, kitty and tmux take as the shape the learner chose), the colours
// of a selection (OSC 117, 119), keys that repeat (DECARM on), the
// eighth bit of a Meta key (?1034: eightBitInput, "true" by default,
// and what readline's smm sets at each prompt), no alternate scroll
// (?1007: alternateScroll, "false") and no reverse wraparound (?45:
// reverseWrap, "false"), and characters that an erase may erase (DECSCA
// 0; before marginResets' DECSC, which saves it). Then (ut35 G9) the
// newer reports a box may turn on go off: in-band resize reports (?2048,
// kitty's and Contour's: each resize typed a CSI 48 ; rows ; cols ... t
// into the prompt), colour-scheme change reports (?2031, Contour's) and
// synchronized output (?2026: left on, a terminal holds back what stepbox
// prints); Meta and Alt sending ESC go back to xterm(1)'s defaults,
// metaSendsEscape (?1036) "false" and altSendsEscape (?1039) "false"; and
// the rest of the colours xterm's ctlseqs can reset: the special ones
// (OSC 105), the pointer's (OSC 113, 114) and Tektronix's (OSC 115, 116,
// 118). The window and icon titles (OSC 0, 1, 2) have no reset: they come
// back from xterm's title stack, pushed when the relay starts (titleSave,
// CSI 22 ; 0 t, both titles) and popped at the end of these (CSI 23 ; 0
// t), which
// xterm allows by default (22 and 23 are not in disallowedWindowOps), as
// do VTE and tmux; a terminal without the stack ignores both. A box that
// pushed titles of its own and left them pushed gets its own back from
// this pop: stepbox cannot tell how deep the stack is, and more pops
// would take titles the learner's own programs pushed.
// DECBKM follows (backarrowReset). The font a box set (OSC 50) is left: there is no
// reset, and what xterm offers, the font menu's Default entry (OSC 50 ;
// #0), would undo the font size the learner chose at every `sh`, and
// rxvt-unicode, which reads OSC 50 as a font's name, would look for a
// font named "#0"; the learner's menu puts it back.
// These are one by one, not a soft reset (CSI ! p): the Linux console
// knows no DECSTR and would print its "p". A terminal that knows a
// sequence no more ignores it whole: an OSC that starts with a digit,
// up to its ST, and a CSI with an intermediate byte (SP, ") up to its
// final one (the Linux console's ESosc and EScsiignore; ECMA-48).
const modeResets = "\x1b[?1049l\x1b[?25h\x1b[?1l\x1b>\x1b[?2004l" +
	"\x1b[?9l\x1b[?1000l\x1b[?1001l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l\x1b[0m" +
	"\x1b(B\x0f\x1b[4l\x1b[?7h\x1b[?5l" +
	"\x1b]104\x1b\\\x1b]110\x1b\\\x1b]111\x1b\\\x1b]112\x1b\\\x1b[20l\x1b[2l" +
	"\x1b]8;;\x1b\\\x1b[0 q\x1b]117\x1b\\\x1b]119\x1b\\\x1b[?8h\x1b[?1034h\x1b[?1007l\x1b[?45l\x1b[0\"q" +
	"\x1b[?2048l\x1b[?2031l\x1b[?2026l\x1b[?1036l\x1b[?1039l" +
	"\x1b]105\x1b\\\x1b]113\x1b\\\x1b]114\x1b\\\x1b]115\x1b\\\x1b]116\x1b\\\x1b]118\x1b\\" + titleRestore

// titleSave pushes the learner's window and icon titles on xterm's title
// stack before a box's command writes to the terminal; titleRestore, the
// end of modeResets, pops them back (see there).
const (
	titleSave    = "\x1b[22;0t"
	titleRestore = "\x1b[23;0t"
)

// backarrowReset gives DECBKM (?67: what the backarrow key sends) back
// as xterm starts it (xterm(1), backarrowKeyIsErase, "true" by default):
// set, BS, where the terminal's erase character is BS (^H), and reset,
// DEL, otherwise, as Linux's default ^? is; erase is the learner's
// terminal's (stty erase). A box that flipped it left the key sending
// what the terminal does not take as erase: a ^H or ^? where a character
// should have gone, wherever the terminal is read cooked, in the
// learner's own shell after stepbox too.
func backarrowReset(erase byte) string {
	if erase == '\b' {
		return "\x1b[?67h"
	}
	return "\x1b[?67l"
}

// marginResets puts the scroll region back to the whole screen where the
// box never set origin mode, and the left and right margins (leaving
// DECLRMM, ?69, gives xterm's margins back the whole width; a CSI s,
// DECSLRM, is not sent: outside DECLRMM it saves the cursor, over the
// DECSC here), and the tab stops (tabResets). Setting the margins homes
// the cursor, so the cursor is saved before (DECSC, with the ASCII set
// already back) and restored after: the prompt stays below the shell's
// output. Origin mode is off in what DECSC saves, so neither this DECRC
// nor a later one turns it on.
func marginResets(cols int) string {
	return "\x1b7\x1b[?6l\x1b[r\x1b[?69l" + tabResets(cols) + "\x1b8"
}

// originResets is marginResets where the box set origin mode (ut32 F3).
// DECSC saves origin mode with the cursor (xterm, tmux), so
// marginResets' DECRC would turn it back on, and so would a later one,
// stepbox's or the terminal's. Leaving origin mode homes the cursor, as
// setting the margins does, and only a DECRC could take it back to where
// the shell left it: so the cursor goes to the bottom line and a new
// line starts there, below all of the shell's output (the tab stops are
// set before, along the top line the cursor is on then); then the clean
// state (origin mode off, the ASCII set, plain colours) is saved over the
// box's, for any later DECRC.
func originResets(cols int) string {
	return "\x1b[?6l\x1b[r\x1b[?69l" + tabResets(cols) + "\x1b[999B\r\n\x1b7"
}

// tabResetsMax bounds the columns tabResets sets stops along.
const tabResetsMax = 1024

// tabResets gives a terminal cols wide a tab stop at every 8th column,
// as it starts with, where a box cleared them (CSI 3 g) or set its own
// (ut33 F1): the shell's next tab would jump to the end of the line.
// tmux and the Linux console know no DECST8C (CSI ? 5 W), so the stops
// are cleared and set one by one (HTS) along the cursor's line, from its
// start 8 columns at a time (CUF stops at the right margin: the margins
// are the whole width by then); the caller takes the cursor back. The
// DECST8C last sets xterm's stops past the width as well, for a wider
// window later; a terminal that does not know it ignores it.
func tabResets(cols int) string {
	cols = min(cols, tabResetsMax)
	var b strings.Builder
	b.WriteString("\x1b[3g\r")
	for c := 9; c <= cols; c += 8 {
		b.WriteString("\x1b[8C\x1bH")
	}
	b.WriteString("\x1b[?5W")
	return b.String()
}

// originWatch tells whether a box's output set origin mode (DECSET 6:
// CSI ? … 6 … h, in a sequence that may span reads). It never forgets:
// a DECRC of the box's may turn it back on after a reset.
type originWatch struct {
	state byte // 0: text; 1: after ESC; 2: after ESC [; 3: in CSI ? params
	param int
	six   bool
	set   bool
}

func (w *originWatch) scan(b []byte) {
	for _, c := range b {
		switch {
		case c == 0x1b:
			w.state = 1
		case w.state == 1 && c == '[':
			w.state = 2
		case w.state == 2 && c == '?':
			w.state, w.param, w.six = 3, 0, false
		case w.state == 3 && c >= '0' && c <= '9':
			w.param = min(w.param*10+int(c-'0'), 1<<20)
		case w.state == 3 && c == ';':
			w.six = w.six || w.param == 6
			w.param = 0
		case w.state == 3 && c == 'h':
			w.set = w.set || w.six || w.param == 6
			w.state = 0
		default:
			w.state = 0
		}
	}
}

// resetFor is what resetModes writes: originSet says the box set origin
// mode; onLine that the cursor is not at the start of a line; cols is
// the learner's terminal's width and erase its erase character.
func resetFor(originSet, onLine bool, cols int, erase byte) string {
	modes := modeResets + backarrowReset(erase)
	if originSet {
		return modes + originResets(cols)
	}
	reset := modes + marginResets(cols)
	if onLine {
		reset += "\r\n"
	}
	return reset
}

// answerWindow is how long the learner's terminal may still be
// answering a query the box's command sent just before it ended.
const answerWindow = 100 * time.Millisecond

// resetModes gives the learner's terminal back as the prompt needs it:
// the modes a box program left on turned off, the cursor on a line of
// its own, and nothing in its input queue that the terminal answered to
// the box (a cursor position report) or that was typed for the box:
// the prompt's line starts empty (tcflush(TCIFLUSH), termios(3)).
func (p *boxTerminal) resetModes() {
	fd := int(p.learner.File.Fd())
	cols := tabResetsMax // a width it does not tell: stops as far as any
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		cols = int(ws.Col)
	}
	p.learner.File.Write([]byte(resetFor(p.origin.set, p.lastOut != '\n', cols, eraseChar(fd))))
	time.Sleep(answerWindow)
	unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
}

// eraseChar is the erase character of the terminal fd (stty erase), or
// Linux's default, DEL, where it cannot be read.
func eraseChar(fd int) byte {
	if tio, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		return tio.Cc[unix.VERASE]
	}
	return 0x7f
}

// errTerminalStdin is the refusal of a learner's terminal as a box
// command's stdin: a command that needs a terminal gets one of its own.
var errTerminalStdin = errors.New("a box command never reads the learner's terminal: give it a terminal of its own (Stdio.Terminal)")

// guardStdio replaces each of std's writers that is a file by a writer
// that is not one, so that the command gets a pipe the session copies
// from, never a descriptor of the session's own. With the learner's
// terminal a box may rewrite its settings and window size (no capability
// needed), read the keys typed at the prompt after it ended, or with
// CAP_SYS_ADMIN type into it (TIOCSTI); what it writes there passes
// text and drawing but no command to the terminal (TerminalFilter).
// With a file (`stepbox run x.sb > log`) it shares the session's file
// offset: it may truncate and rewrite every line stepbox wrote before
// (ftruncate(2), lseek(2)) and learns the file's device and inode
// (ut31 F2). The null device is no one's output: the command gets a
// /dev/null of its own, and nothing is copied. Out and Err on the same
// file share one pipe, which keeps their order. done flushes the filters once the command's output has
// been copied.
func guardStdio(std Stdio) (guarded Stdio, done func(), err error) {
	done = func() {}
	if std.In != nil && IsTerminal(std.In) {
		return std, done, errTerminalStdin
	}
	var filters []*TerminalFilter
	guard := func(f *os.File) io.Writer {
		if NullDevice(f) {
			return nil // a /dev/null of its own (stdioFiles, os/exec): no copy
		}
		if IsTerminal(f) {
			tf := NewTerminalFilter(f)
			filters = append(filters, tf)
			return tf
		}
		return &fileOutput{f}
	}
	outFile, _ := std.Out.(*os.File)
	errFile, _ := std.Err.(*os.File)
	switch {
	case outFile != nil && errFile != nil && (outFile == errFile || sameFile(outFile, errFile)):
		std.Out = guard(outFile)
		std.Err = std.Out
	default:
		if outFile != nil {
			std.Out = guard(outFile)
		}
		if errFile != nil {
			std.Err = guard(errFile)
		}
	}
	return std, func() {
		for _, f := range filters {
			f.Close()
		}
	}, nil
}

// fileOutput is a caller's file that is not a terminal, as a writer that
// is not an *os.File: Box.Exec (stdioFiles) and Box.Enter (os/exec) then
// give the command a pipe and copy from it, as they do for a buffer.
type fileOutput struct{ f *os.File }

func (o *fileOutput) Write(p []byte) (int, error) { return o.f.Write(p) }

// SameTerminal reports whether a and b are both the same terminal: a
// box command's stdout and stderr to it share one pipe and one filter.
func SameTerminal(a, b *os.File) bool {
	return IsTerminal(a) && IsTerminal(b) && sameFile(a, b)
}

// SameFile reports whether a and b are open on the same inode (`> log
// 2>&1`): a box command's stdout and stderr to it share one pipe, in the
// order the command wrote.
func SameFile(a, b *os.File) bool { return sameFile(a, b) }

// sameFile reports whether a and b are open on the same inode.
func sameFile(a, b *os.File) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.Fd()), &sa) != nil || unix.Fstat(int(b.Fd()), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino && sa.Rdev == sb.Rdev
}
