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
		reset := resetFor(boxSet, true, 80)
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
		reset := resetFor(boxSet, false, cols)
		for _, want := range []struct{ seq, what string }{
			{"\x1b]104\x1b\\", "the palette (OSC 104)"}, {"\x1b]110\x1b\\", "the default foreground (OSC 110)"},
			{"\x1b]111\x1b\\", "the default background (OSC 111)"}, {"\x1b]112\x1b\\", "the cursor's colour (OSC 112)"},
			{"\x1b[?69l", "left and right margin mode (DECLRMM)"}, {"\x1b[?9l", "X10 mouse reports"},
			{"\x1b[?1001l", "highlight mouse tracking"}, {"\x1b[?1016l", "SGR-pixel mouse reports"},
			{"\x1b[20l", "LNM"}, {"\x1b[2l", "KAM"}, {"\x1b[3g", "clearing the tab stops before setting them"},
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
	if r := resetFor(false, false, 1<<15); strings.Count(r, "\x1bH") != tabResetsMax/8-1 {
		t.Errorf("a terminal 32768 wide: the reset should set stops along at most %d columns, sets %d", tabResetsMax, strings.Count(r, "\x1bH"))
	}
}
