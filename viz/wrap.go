package viz

import (
	"regexp"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// DefaultWidth is the width stepbox writes to when it cannot ask a
// terminal and $COLUMNS says nothing: a classroom projector's 80.
const DefaultWidth = 80

// MinWidth is the narrowest width stepbox lays text out for; narrower
// terminals fold what it writes.
const MinWidth = 40

// Hang lays out prefix followed by text, folded at spaces to width
// columns; every line after the first is indented by prefix's width so
// the text reads as one block beside it ("✓ ", "error: ", "  why:    ").
// Escape codes in either part are kept and not counted.
func Hang(prefix, text string, width int) string {
	indent := strings.Repeat(" ", ansi.StringWidth(prefix))
	return prefix + fold(text, width-len(indent), width-len(indent), indent)
}

// Wrap folds text to width columns at spaces, never inside a word when
// the word fits on a line of its own; a word longer than a whole line
// (a long path) is broken after a '/' where it has one. Every line
// after the first starts with indent, counted in width. A newline in
// text starts a new, indented line. Escape codes are kept and not
// counted.
func Wrap(text string, width int, indent string) string {
	return fold(text, width, width-ansi.StringWidth(indent), indent)
}

// fold wraps text to first columns on its first line and rest on the
// others, which start with indent.
func fold(text string, first, rest int, indent string) string {
	if rest < 8 {
		return strings.ReplaceAll(text, nbsp, " ")
	}
	var out []string
	for _, para := range strings.Split(text, "\n") {
		if len(out) > 0 {
			first = rest
		}
		out = append(out, foldWords(para, first, rest)...)
	}
	return strings.ReplaceAll(strings.Join(out, "\n"+indent), nbsp, " ")
}

// Glue holds the words of s together on one line when it is folded: a
// call's " = 0" stays at the end of the call's own line.
func Glue(s string) string { return strings.ReplaceAll(s, " ", nbsp) }

// nbsp holds words together until a line is folded.
const nbsp = "\u00a0"

// foldWords fills lines with the words of s, greedily, as a reader
// expects: the first line of at most first columns, the others of rest.
// A run of spaces between two words on one line stays as it was.
func foldWords(s string, first, rest int) []string {
	width := first
	// Leading spaces are the text's own indentation: they stay.
	body := strings.TrimLeft(s, " ")
	line := s[:len(s)-len(body)]
	n := ansi.StringWidth(line)
	empty := true
	var lines []string
	for _, m := range word.FindAllStringSubmatch(body, -1) {
		gap, w := m[1], m[2]
		if empty {
			gap = ""
		}
		ww := ansi.StringWidth(w)
		if !empty && n+len(gap)+ww > width {
			lines = append(lines, line)
			line, n, empty, width, gap = "", 0, true, rest, ""
		}
		if ww > rest {
			// Longer than any line (a long path): it starts a line of
			// its own and breaks after slashes, else anywhere.
			if !empty {
				lines = append(lines, line)
				width = rest
			}
			parts := breakAfterSlashes(w, rest)
			lines = append(lines, parts[:len(parts)-1]...)
			line, n, empty = parts[len(parts)-1], ansi.StringWidth(parts[len(parts)-1]), false
			continue
		}
		line += gap + w
		n += len(gap) + ww
		empty = false
	}
	return append(lines, line)
}

// word is a word and the spaces before it.
var word = regexp.MustCompile(`( *)([^ ]+)`)

// para is text folded to width, each line in style: a panel's title or
// note, its lines after the first indented by two.
func para(style lipgloss.Style, text string, width int) string {
	return foldStyled(style, text, width, width-2, "  ")
}

// foldStyled folds text as fold does, each line in style (lipgloss
// would pad a block of lines to its widest).
func foldStyled(style lipgloss.Style, text string, first, rest int, indent string) string {
	lines := strings.Split(fold(text, first, rest, indent), "\n")
	for i, l := range lines {
		body := strings.TrimPrefix(l, indent)
		if i == 0 {
			body = l
		}
		lines[i] = l[:len(l)-len(body)] + style.Render(body)
	}
	return strings.Join(lines, "\n")
}

// breakAfterSlashes cuts a word wider than width (a path) into pieces
// that fit, each ending at a '/' where the word has one in reach, else
// cut where the width ends. Never at a '-': a session's "PID-start" or
// a cgroup's "web-ID" stays whole where it can.
func breakAfterSlashes(w string, width int) []string {
	var parts []string
	for ansi.StringWidth(w) > width {
		cut := ansi.Truncate(w, width, "")
		if i := strings.LastIndex(cut, "/"); i > 0 {
			cut = cut[:i+1]
		}
		parts = append(parts, cut)
		w = w[len(cut):]
	}
	return append(parts, w)
}
