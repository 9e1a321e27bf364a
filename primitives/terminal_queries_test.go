package primitives

import (
	"bytes"
	"testing"
)

// What a box writes reaches the learner's terminal without a single
// sequence that makes the terminal type an answer into stepbox's prompt,
// however the writes split it, and with colours and text as written.
func TestQueryFilterDropsWhatATerminalAnswers(t *testing.T) {
	in := "red:\x1b[31mX\x1b[0m" +
		"\x1b[6n\x1b[5n\x1b[?6n\x1b[c\x1b[>c\x1b[=0c\x1bZ\x05" +
		"\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1b]11;?\x07\x1b]4;1;?\x1b\\\x1b[14t\x1b[18t\x1b[21t\x1b[?2004$p" +
		"\x1b]0;a title\x07\x1b[8;24;80t\x1b[2J\x1b[?1049h done\n"
	want := "red:\x1b[31mX\x1b[0m\x1b]0;a title\x07\x1b[8;24;80t\x1b[2J\x1b[?1049h done\n"
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		f := NewQueryFilter(&out)
		for i := 0; i < len(in); i += size {
			n, err := f.Write([]byte(in[i:min(i+size, len(in))]))
			if err != nil || n != min(size, len(in)-i) {
				t.Fatalf("write of %d bytes: %d, %v", size, n, err)
			}
		}
		if out.String() != want {
			t.Fatalf("written %d bytes at a time: got %q, want %q", size, out.String(), want)
		}
	}
}

// A Ctrl-P goes to the box unless Ctrl-Q follows it, however the keys
// arrive; Ctrl-P Ctrl-Q is the session's and ends the relay.
func TestDetachKeysAreCtrlPCtrlQ(t *testing.T) {
	var d detachKeys
	if out, det := d.feed([]byte("ls\x10")); string(out) != "ls" || det {
		t.Fatalf("a trailing Ctrl-P is held for its next key: %q %v", out, det)
	}
	if out := d.expire(); string(out) != "\x10" {
		t.Fatalf("a Ctrl-P whose Ctrl-Q never came goes to the box: %q", out)
	}
	if out, det := d.feed([]byte("\x10a\x10\x10")); string(out) != "\x10a\x10" || det {
		t.Fatalf("Ctrl-P then another key: both go to the box: %q %v", out, det)
	}
	if out, det := d.feed([]byte("\x11rest")); string(out) != "" || !det {
		t.Fatalf("Ctrl-P, then Ctrl-Q in the next read: detach: %q %v", out, det)
	}
	d = detachKeys{}
	if out, det := d.feed([]byte("x\x10\x11")); string(out) != "x" || !det {
		t.Fatalf("Ctrl-P Ctrl-Q in one read: detach: %q %v", out, det)
	}
	if out, det := d.feed([]byte("\x11")); string(out) != "\x11" || det {
		t.Fatalf("Ctrl-Q alone is the box's: %q %v", out, det)
	}
}
