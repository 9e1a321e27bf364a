package viz

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"stepbox/primitives/step"
)

// Every line of a hung block fits the width, breaks fall between words,
// and continuation lines line up under the text, not the prefix.
func TestHangFoldsAtWordsUnderItsText(t *testing.T) {
	text := "box web has cgroup web-361b639d8431 (id 361b639d8431); find it with: !find /sys/fs/cgroup -name '*361b639d8431*'"
	for _, width := range []int{80, 60, 40} {
		got := Hang("✓ ", text, width)
		lines := strings.Split(got, "\n")
		if len(lines) < 2 {
			t.Fatalf("width %d: not folded:\n%s", width, got)
		}
		for i, l := range lines {
			if ansi.StringWidth(l) > width {
				t.Errorf("width %d: line %d is %d columns: %q", width, i, ansi.StringWidth(l), l)
			}
			if i > 0 && !strings.HasPrefix(l, "  ") || i > 0 && strings.HasPrefix(l, "   ") {
				t.Errorf("width %d: line %d is not indented by the prefix's width: %q", width, i, l)
			}
		}
		if back := strings.Join(strings.Fields(got), " "); back != "✓ "+text {
			t.Errorf("width %d: folding lost or cut words:\n%s", width, got)
		}
	}
}

// A path longer than a line starts a line of its own and breaks after a
// slash, never in the middle of a name.
func TestWrapBreaksAnOverlongPathAfterSlashes(t *testing.T) {
	p := "/sys/fs/cgroup/memory/process_api/099260cdcc8708f0bd27215e1ef63010/stepbox-9579/web-361b639d8431/cgroup.procs"
	got := Wrap("echo 9594 > "+p, 50, "    ")
	lines := strings.Split(got, "\n")
	if lines[0] != "echo 9594 >" {
		t.Errorf("the path did not start a line of its own:\n%s", got)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasSuffix(l, "/") || ansi.StringWidth(l) > 50 {
			t.Errorf("line %q does not end at a slash within 50 columns:\n%s", l, got)
		}
	}
}

// Escape codes are neither counted nor broken.
func TestWrapKeepsEscapeCodesWhole(t *testing.T) {
	th := NewTheme("default")
	got := Hang(th.Bad.Render("error:")+" ", strings.Repeat("word ", 30), 40)
	for _, l := range strings.Split(got, "\n") {
		if ansi.StringWidth(l) > 40 {
			t.Errorf("line %q is wider than 40", l)
		}
	}
	if !strings.HasPrefix(got, th.Bad.Render("error:")+" word") {
		t.Errorf("the styled prefix was changed:\n%q", got)
	}
}

// In explain, a call's result ends the call's own last line: it never
// starts a line, and never stands on one by itself.
func TestExplainEndsEachCallWithItsResult(t *testing.T) {
	for _, rec := range []*step.Step{pivotRecord(), failedRecord(), planRecord()} {
		for width := 60; width <= 120; width++ {
			got := StepPanel(rec, width, NewTheme("plain"))
			for _, c := range rec.Calls {
				end := " = " + c.Result
				if !strings.Contains(got, end+"\n") && !strings.HasSuffix(got, end) {
					t.Errorf("width %d: no line ends with %q:\n%s", width, end, got)
				}
			}
			for _, l := range strings.Split(got, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "=") {
					t.Errorf("width %d: a result starts a line: %q\n%s", width, l, got)
				}
				// A command with standard tools is folded between its words
				// only: a word wider than the terminal stays whole.
				if ansi.StringWidth(l) > width && !shellPiece(rec.Shell, l) {
					t.Errorf("width %d: line wider than the terminal: %q", width, l)
				}
			}
		}
	}
}

// shellPiece says whether l is a command of shell, or a piece of one that
// FoldShell made.
func shellPiece(shell []string, l string) bool {
	piece := strings.TrimSuffix(strings.TrimSpace(l), " \\")
	for _, s := range shell {
		if strings.Contains(s, piece) {
			return true
		}
	}
	return false
}

// A long nft command folds between its words, never inside the quoted
// rule, and pasted back it is the same command.
func TestExplainFoldsALongCommandBetweenItsWords(t *testing.T) {
	cmd := `nft add rule ip stepbox postrouting 'ip saddr 172.20.0.0/24 oifname != "br7" counter masquerade comment "stepbox nat br7"'`
	rec := &step.Step{Command: "net nat", Shell: []string{cmd}}
	got := StepPanel(rec, 120, NewTheme("plain"))
	for _, l := range strings.Split(got, "\n") {
		if ansi.StringWidth(l) > 120 {
			t.Errorf("line wider than 120 columns: %q", l)
		}
	}
	folded := FoldShell(cmd, 116)
	if !strings.HasSuffix(strings.Split(folded, "\n")[0], `postrouting \`) {
		t.Errorf("not folded before the quoted rule:\n%s", folded)
	}
	if back := strings.ReplaceAll(folded, " \\\n"+shellIndent, " "); back != cmd {
		t.Errorf("the folded lines are another command:\n%s", folded)
	}
}
