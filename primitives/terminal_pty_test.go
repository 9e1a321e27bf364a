package primitives

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// learnerTerminal is a pty the test owns, standing for the learner's
// terminal: the test reads what is written to it from its master.
func learnerTerminal(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	if err := pty.Setsize(master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	return master, tty
}

func ttyDevice(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Rdev
}

// Given the learner's terminal as its output, a box command gets a pipe
// the session copies to it, never the terminal itself: it cannot resize
// it, and what it prints still arrives.
func TestExecGivesABoxCommandPipesForTheLearnersTerminal(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("piped", false)
	if err != nil {
		t.Fatal(err)
	}
	master, tty := learnerTerminal(t)
	got := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		b := make([]byte, 4096)
		for !strings.Contains(buf.String(), "END") {
			n, err := master.Read(b)
			buf.Write(b[:n])
			if err != nil {
				break
			}
		}
		got <- buf.String()
	}()
	dev := ttyDevice(t, tty)
	script := `for f in 0 1 2; do stat -L -c "FD$f %t:%T %F" /proc/self/fd/$f; done; stty rows 5 cols 30 <&1 2>/dev/null; echo END`
	es, err := b.Exec(context.Background(), []string{"sh", "-c", script}, nil, Stdio{Out: tty, Err: tty})
	if err != nil || es.Code != 0 {
		t.Fatalf("exec: %v, status %d", err, es.Code)
	}
	var out string
	select {
	case out = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the command's output never reached the learner's terminal")
	}
	if want := fmt.Sprintf("%x:%x", unix.Major(dev), unix.Minor(dev)); strings.Contains(out, want) || !strings.Contains(out, "FD1 0:0 fifo") {
		t.Errorf("the command's fds should be pipes and /dev/null, never the terminal %s:\n%s", want, out)
	}
	if ws, err := unix.IoctlGetWinsize(int(tty.Fd()), unix.TIOCGWINSZ); err != nil || ws.Row != 40 || ws.Col != 120 {
		t.Errorf("the box command resized the learner's terminal: %+v, %v", ws, err)
	}
	if _, err := b.Exec(context.Background(), []string{"true"}, nil, Stdio{In: tty}); err == nil || !strings.Contains(err.Error(), "never reads the learner's terminal") {
		t.Errorf("exec with the learner's terminal as stdin: %v, want a refusal", err)
	}
}

// With Stdio.Terminal, the command gets a pty of its own as its
// controlling terminal, sized as the learner's; once it ends, a process
// it left on that pty reads EOF, never what is typed at the learner's
// terminal afterwards.
func TestExecWithATerminalGivesTheCommandAPtyOfItsOwn(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("own", false)
	if err != nil {
		t.Fatal(err)
	}
	master, tty := learnerTerminal(t)
	term, err := OpenTerminal(tty)
	if err != nil {
		t.Fatal(err)
	}
	stolen := t.TempDir() + "/stolen"
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, master); close(copied) }()
	script := `echo "NR=$(cut -d' ' -f7 /proc/self/stat) SIZE=$(stty size)"; setsid sh -c 'sleep 0.5; cat >>` + stolen + `' &`
	es, err := b.Exec(context.Background(), []string{"sh", "-c", script}, nil, Stdio{Terminal: term})
	if err != nil || es.Code != 0 {
		t.Fatalf("exec: %v, status %d", err, es.Code)
	}
	time.Sleep(time.Second)
	if _, err := master.Write([]byte("typed-after\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if b, _ := os.ReadFile(stolen); len(b) > 0 {
		t.Errorf("a process the command left read what was typed at the learner's terminal: %q", b)
	}
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ICANON == 0 {
		t.Errorf("the learner's terminal was left raw: lflag %#x, %v", tio.Lflag, err)
	}
	dev := ttyDevice(t, tty)
	tty.Close()
	master.Close()
	<-copied
	var nr uint64
	i := strings.Index(out.String(), "NR=")
	if i >= 0 {
		fmt.Sscanf(out.String()[i:], "NR=%d", &nr)
	}
	if nr == 0 || nr == dev {
		t.Errorf("the command's controlling terminal should be a pty of its own (tty_nr %d, the learner's %d):\n%s", nr, dev, out.String())
	}
	if !strings.Contains(out.String(), "SIZE=40 120") {
		t.Errorf("the command's terminal should have the learner's size:\n%s", out.String())
	}
	// ut35 G9: the learner's titles are pushed before anything of the
	// box's is shown, and popped by the reset after it.
	if push, pop, nr := strings.Index(out.String(), "\x1b[22;0t"), strings.LastIndex(out.String(), "\x1b[23;0t"), strings.Index(out.String(), "NR="); push != 0 || pop < nr || nr < 0 {
		t.Errorf("the learner's window and icon titles should be pushed (CSI 22;0t) before the command's output and popped (CSI 23;0t) after it:\n%q", out.String())
	}
}

// ut32 F3: a box that set origin mode and a scroll region and saved the
// cursor (DECSC saves origin mode with it) got origin mode back from the
// DECRC that ended the reset, and again from any later DECRC. The reset
// leaves it off, in the terminal and in the state DECSC saved, as a model
// of the two (xterm's and tmux's DECSC/DECRC) follows the bytes.
func TestResetAfterABoxThatSetOriginModeLeavesItOffForGood(t *testing.T) {
	for _, c := range []struct {
		out string
		set bool
	}{
		{"\x1b[?6h", true}, {"\x1b[?1;6h", true}, {"\x1b[?6;25h", true}, {"x\x1b[3;8r\x1b[?6h\x1b7", true},
		{"\x1b[?16h", false}, {"\x1b[?6l", false}, {"\x1b[6h", false}, {"\x1b[?61h", false}, {"?6h", false},
	} {
		// Every split of the output into two reads.
		for i := 0; i <= len(c.out); i++ {
			var w originWatch
			w.scan([]byte(c.out[:i]))
			w.scan([]byte(c.out[i:]))
			if w.set != c.set {
				t.Errorf("origin mode set by %q read as %q+%q: %v, want %v", c.out, c.out[:i], c.out[i:], w.set, c.set)
			}
		}
	}
	for _, boxSet := range []bool{true, false} {
		// The box's state: origin mode as it left it, and saved so.
		on, saved := boxSet, boxSet
		reset := resetFor(boxSet, true, 80, 0x7f)
		for i := 0; i < len(reset); i++ {
			switch {
			case strings.HasPrefix(reset[i:], "\x1b[?6h"):
				on = true
			case strings.HasPrefix(reset[i:], "\x1b[?6l"):
				on = false
			case strings.HasPrefix(reset[i:], "\x1b7"):
				saved = on
			case strings.HasPrefix(reset[i:], "\x1b8"):
				on = saved
			}
		}
		if on || saved {
			t.Errorf("box set origin mode %v: after the reset %q origin mode is on %v, in the saved cursor %v; want both off", boxSet, reset, on, saved)
		}
		if !strings.HasSuffix(reset, "\r\n") && !strings.HasSuffix(reset, "\r\n\x1b7") {
			t.Errorf("box set origin mode %v: the reset %q should leave the cursor at the start of a new line", boxSet, reset)
		}
	}
}

// ut33 F1: a box that set the default colours to one (OSC 10, 11), the
// palette, the cursor's colour, left and right margins, X10, highlight
// or SGR-pixel mouse reports, LNM or KAM, or that cleared the tab stops,
// left them so after `sh`: every later line of stepbox's invisible. The
// reset takes each back, and sets a stop every 8 columns along the
// terminal's width with the cursor back where it was (the DECSC before
// and the DECRC after, or the start of the new line where the box set
// origin mode), as a model of a terminal's cursor follows the bytes.
func TestResetAfterABoxGivesBackColoursMarginsMouseModesAndTabStops(t *testing.T) {
	for _, boxSet := range []bool{true, false} {
		const cols = 80
		reset := resetFor(boxSet, false, cols, 0x7f)
		for _, want := range []struct{ seq, what string }{
			{"\x1b]104\x1b\\", "the palette (OSC 104)"}, {"\x1b]110\x1b\\", "the default foreground (OSC 110)"},
			{"\x1b]111\x1b\\", "the default background (OSC 111)"}, {"\x1b]112\x1b\\", "the cursor's colour (OSC 112)"},
			{"\x1b[?69l", "left and right margin mode (DECLRMM)"}, {"\x1b[?9l", "X10 mouse reports"},
			{"\x1b[?1001l", "highlight mouse tracking"}, {"\x1b[?1016l", "SGR-pixel mouse reports"},
			{"\x1b[20l", "LNM"}, {"\x1b[2l", "KAM"}, {"\x1b[3g", "clearing the tab stops before setting them"},
			// ut34 F2
			{"\x1b]8;;\x1b\\", "an OSC 8 hyperlink"}, {"\x1b[0 q", "the cursor's shape (DECSCUSR)"},
			{"\x1b]117\x1b\\", "the highlight colour (OSC 117)"}, {"\x1b]119\x1b\\", "the highlight foreground (OSC 119)"},
			{"\x1b[?8h", "keys that repeat (DECARM)"}, {"\x1b[?67l", "the backarrow key's DEL (DECBKM)"},
			{"\x1b[?1034h", "the Meta key's eighth bit (eightBitInput)"}, {"\x1b[?1007l", "alternate scroll mode"},
			{"\x1b[?45l", "reverse wraparound"}, {"\x1b[0\"q", "erasable characters (DECSCA)"},
			// ut35 G9
			{"\x1b[?2048l", "in-band resize reports"}, {"\x1b[?2031l", "colour-scheme change reports"},
			{"\x1b[?2026l", "synchronized output"}, {"\x1b[?1036l", "Meta sending ESC (metaSendsEscape)"},
			{"\x1b[?1039l", "Alt sending ESC (altSendsEscape)"}, {"\x1b]105\x1b\\", "the special colours (OSC 105)"},
			{"\x1b]113\x1b\\", "the pointer's foreground (OSC 113)"}, {"\x1b]114\x1b\\", "the pointer's background (OSC 114)"},
			{"\x1b]115\x1b\\", "Tektronix's foreground (OSC 115)"}, {"\x1b]116\x1b\\", "Tektronix's background (OSC 116)"},
			{"\x1b]118\x1b\\", "Tektronix's cursor colour (OSC 118)"}, {"\x1b[23;0t", "the window and icon titles (title stack pop)"},
		} {
			if !strings.Contains(reset, want.seq) {
				t.Errorf("box set origin mode %v: the reset %q should turn off or give back %s (%q)", boxSet, reset, want.what, want.seq)
			}
		}
		// Where the cursor goes: col is 0-based, -1 once it is wherever
		// DECSC saved it (the shell's last column).
		col, saved, savedAt := -1, -1, -1
		var stops []int
		cleared := false
		for i := 0; i < len(reset); i++ {
			switch r := reset[i:]; {
			case strings.HasPrefix(r, "\x1b7"):
				saved, savedAt = col, i
			case strings.HasPrefix(r, "\x1b8"):
				col = saved
			case r[0] == '\r':
				col = 0
			case strings.HasPrefix(r, "\x1b[r"), strings.HasPrefix(r, "\x1b[?6l"):
				col = 0 // both home the cursor
			case strings.HasPrefix(r, "\x1b[8C"):
				if col < 0 {
					t.Fatalf("box set origin mode %v: the reset %q moves the cursor by 8 from where the shell left it", boxSet, reset)
				}
				col = min(col+8, cols-1)
			case strings.HasPrefix(r, "\x1bH"):
				stops = append(stops, col)
			case strings.HasPrefix(r, "\x1b[3g"):
				cleared, stops = true, nil
			}
		}
		var want []int
		for c := 8; c < cols; c += 8 {
			want = append(want, c)
		}
		if !cleared || !slices.Equal(stops, want) {
			t.Errorf("box set origin mode %v: the reset %q should clear the tab stops and set them at columns %v (0-based), sets %v", boxSet, reset, want, stops)
		}
		if boxSet && (col != 0 || savedAt != len(reset)-2) {
			t.Errorf("box set origin mode %v: the reset %q should end at the start of a new line (column %d), saved there", boxSet, reset, col)
		}
		if !boxSet && col != -1 {
			t.Errorf("box set origin mode %v: the reset %q should leave the cursor where the shell left it, leaves it at column %d", boxSet, reset, col)
		}
	}
	if r := resetFor(false, false, 1<<15, 0x7f); strings.Count(r, "\x1bH") != tabResetsMax/8-1 {
		t.Errorf("a terminal 32768 wide: the reset should set stops along at most %d columns, sets %d", tabResetsMax, strings.Count(r, "\x1bH"))
	}
}

// ut34 F2: after `sh` or `enter`, a box's OSC 8 hyperlink stayed open
// (every later line of stepbox's a link to the box's address), and so did
// the cursor's shape, the highlight colours, autorepeat off, DECBKM,
// ?1034, ?1007, ?45 and DECSCA as the box set them. The reset, byte for
// byte: what was there, then each of those back to xterm's default, and
// DECBKM as the learner's erase character makes it (BS: set).
func TestResetAfterABoxClosesAHyperlinkAndGivesBackEachModeByteForByte(t *testing.T) {
	const modes = "\x1b[?1049l\x1b[?25h\x1b[?1l\x1b>\x1b[?2004l" +
		"\x1b[?9l\x1b[?1000l\x1b[?1001l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l\x1b[0m" +
		"\x1b(B\x0f\x1b[4l\x1b[?7h\x1b[?5l" +
		"\x1b]104\x1b\\\x1b]110\x1b\\\x1b]111\x1b\\\x1b]112\x1b\\\x1b[20l\x1b[2l" +
		"\x1b]8;;\x1b\\" + // the hyperlink closed
		"\x1b[0 q" + // DECSCUSR: the default cursor
		"\x1b]117\x1b\\\x1b]119\x1b\\" + // the highlight colours
		"\x1b[?8h" + // DECARM: keys repeat
		"\x1b[?1034h\x1b[?1007l\x1b[?45l" + // eightBitInput, alternateScroll, reverseWrap
		"\x1b[0\"q" + // DECSCA: erasable
		"\x1b[?2048l\x1b[?2031l\x1b[?2026l" + // ut35 G9: resize and colour-scheme reports, synchronized output
		"\x1b[?1036l\x1b[?1039l" + // metaSendsEscape, altSendsEscape
		"\x1b]105\x1b\\\x1b]113\x1b\\\x1b]114\x1b\\\x1b]115\x1b\\\x1b]116\x1b\\\x1b]118\x1b\\" + // special, pointer and Tektronix colours
		"\x1b[23;0t" // the titles pushed before the box ran
	const tabs = "\x1b[3g\r\x1b[8C\x1bH\x1b[8C\x1bH\x1b[?5W" // 20 columns: stops at 8 and 16
	for _, c := range []struct {
		origin, onLine bool
		erase          byte
		want           string
	}{
		{false, true, 0x7f, modes + "\x1b[?67l" + "\x1b7\x1b[?6l\x1b[r\x1b[?69l" + tabs + "\x1b8" + "\r\n"},
		{false, false, 0x7f, modes + "\x1b[?67l" + "\x1b7\x1b[?6l\x1b[r\x1b[?69l" + tabs + "\x1b8"},
		{false, false, '\b', modes + "\x1b[?67h" + "\x1b7\x1b[?6l\x1b[r\x1b[?69l" + tabs + "\x1b8"},
		{true, true, 0x7f, modes + "\x1b[?67l" + "\x1b[?6l\x1b[r\x1b[?69l" + tabs + "\x1b[999B\r\n\x1b7"},
		{true, false, '\b', modes + "\x1b[?67h" + "\x1b[?6l\x1b[r\x1b[?69l" + tabs + "\x1b[999B\r\n\x1b7"},
	} {
		if got := resetFor(c.origin, c.onLine, 20, c.erase); got != c.want {
			t.Errorf("origin mode set %v, on a line %v, erase %q: the reset is\n%q\nwant\n%q", c.origin, c.onLine, c.erase, got, c.want)
		}
	}
}

// The reset is harmless where a sequence is unknown: each byte belongs
// to a sequence ECMA-48 parses whole (ESC and a final byte, with
// intermediates; a CSI; an OSC ended by ST), or is CR, LF or SI, so a
// terminal that does not know a sequence prints nothing of it. Each OSC
// starts with a digit: the Linux console skips only those up to their
// ST (ESC ] R resets its palette, any other byte ends the sequence and
// the rest is printed). No OSC 50: a font has no reset (modeResets).
func TestResetIsIgnoredWholeWhereASequenceIsUnknown(t *testing.T) {
	for _, origin := range []bool{false, true} {
		for _, erase := range []byte{0x7f, '\b'} {
			reset := resetFor(origin, true, 80, erase)
			for i := 0; i < len(reset); {
				n := ecma48Len(reset[i:])
				if n == 0 {
					t.Fatalf("origin %v, erase %q: the reset %q has a byte no sequence holds at %d: %q", origin, erase, reset, i, reset[i:min(i+12, len(reset))])
				}
				if seq := reset[i : i+n]; strings.HasPrefix(seq, "\x1b]") && (seq[2] < '0' || seq[2] > '9' || strings.HasPrefix(seq, "\x1b]50;")) {
					t.Errorf("origin %v, erase %q: the reset sends %q: an OSC the Linux console does not skip, or a font change", origin, erase, seq)
				}
				i += n
			}
		}
	}
}

// ecma48Len is the length of the control sequence or the control s
// starts with, as ECMA-48 parses it, or 0 for anything else (a byte a
// terminal would print, a sequence cut short, an OSC ended by BEL).
func ecma48Len(s string) int {
	switch {
	case s[0] == '\r' || s[0] == '\n' || s[0] == 0x0f:
		return 1
	case s[0] != 0x1b || len(s) < 2:
		return 0
	case s[1] == '[':
		i := 2
		for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
			i++ // parameters
		}
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++ // intermediates
		}
		if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
			return i + 1
		}
		return 0
	case s[1] == ']':
		for i := 2; i < len(s); i++ {
			switch {
			case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
				return i + 2 // ST
			case s[i] < 0x20 || s[i] > 0x7e:
				return 0
			}
		}
		return 0
	}
	i := 1
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++ // intermediates, as in ESC ( B
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		return i + 1
	}
	return 0
}

// DECBKM follows the erase character of the learner's terminal, read as
// resetModes reads it: BS where stty erase is ^H, DEL otherwise.
func TestResetGivesTheBackarrowKeyTheLearnersEraseCharacter(t *testing.T) {
	_, tty := learnerTerminal(t)
	fd := int(tty.Fd())
	for _, c := range []struct {
		erase byte
		want  string
	}{{'\b', "\x1b[?67h"}, {0x7f, "\x1b[?67l"}} {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		tio.Cc[unix.VERASE] = c.erase
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
			t.Fatal(err)
		}
		if got := eraseChar(fd); got != c.erase {
			t.Errorf("stty erase %q: read %q", c.erase, got)
		}
		if r := resetFor(false, false, 80, eraseChar(fd)); !strings.Contains(r, c.want) || strings.Count(r, "\x1b[?67") != 1 {
			t.Errorf("stty erase %q: the reset %q should send DECBKM once, as %q", c.erase, r, c.want)
		}
	}
}
