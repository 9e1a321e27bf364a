package repl

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/step"
	"stepbox/viz"
)

// The lessons' Markdown, for a terminal: paragraphs wrapped to the width,
// "- " items with a hanging indent, `code` in the command style and
// **bold** in the title style. Nothing more is needed by the lessons.

type span struct {
	text  string
	style int // plain, code or bold
}

const (
	plainText = iota
	codeText
	boldText
)

// renderMarkdown wraps md to width columns, each line starting with indent.
func renderMarkdown(md string, width int, th viz.Theme, indent string) string {
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(md), "\n\n") {
		var items []string // a paragraph, or its list items
		for _, line := range strings.Split(para, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "- ") || len(items) == 0 {
				items = append(items, line)
				continue
			}
			items[len(items)-1] += " " + line
		}
		for _, item := range items {
			first, rest := indent, indent
			if body, ok := strings.CutPrefix(item, "- "); ok {
				item, first, rest = body, indent+"• ", indent+"  "
			}
			out = append(out, wrapSpans(parseInline(item), width, th, first, rest)...)
		}
		out = append(out, "")
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

// parseInline splits text at `code` and **bold** markers.
func parseInline(text string) []span {
	var out []span
	style := plainText
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, span{cur.String(), style})
			cur.Reset()
		}
	}
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '`' && style != boldText:
			flush()
			style = toggle(style, codeText)
		case strings.HasPrefix(text[i:], "**") && style != codeText:
			flush()
			style = toggle(style, boldText)
			i++
		default:
			cur.WriteByte(text[i])
		}
	}
	flush()
	return out
}

// toggle opens style, or closes it when it is open.
func toggle(cur, style int) int {
	if cur == style {
		return plainText
	}
	return style
}

// wrapSpans breaks spans into lines of at most width columns; a word
// keeps its styles across spans ("`ns`," is one word).
func wrapSpans(spans []span, width int, th viz.Theme, first, rest string) []string {
	type word struct {
		parts []span
		n     int
	}
	var words []word
	var cur word
	for _, s := range spans {
		text := s.text
		if s.style == codeText {
			// Code stays whole: one word when it fits a line, else folded
			// only at spaces outside its quotes.
			if utf8.RuneCountInString(strings.TrimSpace(text)) <= width-utf8.RuneCountInString(rest) {
				text = viz.Glue(text)
			} else {
				text = glueQuoted(text)
			}
		}
		for i, piece := range strings.Split(text, " ") {
			piece = unglue(piece)
			if i > 0 && cur.n > 0 {
				words = append(words, cur)
				cur = word{}
			}
			if piece != "" {
				cur.parts = append(cur.parts, span{piece, s.style})
				cur.n += utf8.RuneCountInString(piece)
			}
		}
	}
	if cur.n > 0 {
		words = append(words, cur)
	}
	render := func(w word) string {
		var b strings.Builder
		for _, p := range w.parts {
			switch p.style {
			case codeText:
				b.WriteString(th.Cmd.Render(p.text))
			case boldText:
				b.WriteString(th.Title.Render(p.text))
			default:
				b.WriteString(p.text)
			}
		}
		return b.String()
	}
	var lines []string
	line, n := first, utf8.RuneCountInString(first)
	empty := true
	for _, w := range words {
		if !empty && n+1+w.n > width {
			lines = append(lines, line)
			line, n, empty = rest, utf8.RuneCountInString(rest), true
		}
		if !empty {
			line += " "
			n++
		}
		line += render(w)
		n += w.n
		empty = false
	}
	return append(lines, line)
}

// frame draws a large, quiet panel for lectures: a rounded border, room
// around the text, the title in the title style.
func frame(title string, body []string, width int, th viz.Theme) string {
	inner := width - 2
	pad := func(s string) string {
		gap := inner - 3 - lipgloss.Width(s)
		if gap < 0 {
			gap = 0
		}
		return th.Border.Render("│") + "   " + s + strings.Repeat(" ", gap) + th.Border.Render("│")
	}
	lines := []string{th.Border.Render("╭" + strings.Repeat("─", inner) + "╮"), pad("")}
	if title != "" {
		lines = append(lines, pad(th.Title.Render(title)), pad(""))
	}
	for _, l := range body {
		lines = append(lines, pad(l))
	}
	lines = append(lines, pad(""), th.Border.Render("╰"+strings.Repeat("─", inner)+"╯"))
	return strings.Join(lines, "\n")
}

// verdict is a lesson's ✓ or ✗ line: head in style, then text, wrapped at
// word boundaries to width, later lines under the text.
func verdict(style lipgloss.Style, head, text string, width int, th viz.Theme, indent string) string {
	// What a check saw quotes the box (a hostname, a file name): its
	// control characters are escaped, as every other line shows them.
	spans := append([]span{{head, plainText}}, parseInline(" "+printable(text))...)
	lines := wrapSpans(spans, width, th, indent, indent+"  ")
	// The head is one word or more of plain text at the start of the first
	// line: style it there.
	lines[0] = strings.Replace(lines[0], head, style.Render(head), 1)
	return strings.Join(lines, "\n")
}

// glueQuoted holds together the words of a command that sit inside its
// quotes ('…' or "…") or a command substitution ($(…)), so that a line is
// folded only where the shell itself splits words: a folded command can
// still be read as one.
func glueQuoted(cmd string) string {
	var b strings.Builder
	var quote rune
	depth := 0 // $( … ) nesting outside quotes
	for i, r := range cmd {
		switch {
		case quote == 0 && (r == '\'' || r == '"'):
			quote = r
		case r == quote:
			quote = 0
		case quote == 0 && r == '(' && i > 0 && cmd[i-1] == '$':
			depth++
		case quote == 0 && r == ')' && depth > 0:
			depth--
		case r == ' ' && (quote != 0 || depth > 0):
			b.WriteString(viz.Glue(" "))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unglue turns the spaces viz.Glue held together back into spaces.
func unglue(s string) string { return strings.ReplaceAll(s, viz.Glue(" "), " ") }

// commandLines folds a command after lead (a prompt, an indent) to width
// columns, only at spaces outside its quotes, later lines indented four
// columns past the lead's own indent: a long quoted part gets most of a
// line.
func commandLines(lead, cmd string, width int) string {
	indent := lead[:len(lead)-len(strings.TrimLeft(lead, " "))] + "    "
	return viz.Wrap(viz.Glue(lead)+glueQuoted(cmd), width, indent)
}

// command prints cmd after lead folded as commandLines does, each line in
// the command style (lipgloss pads a block of lines to its widest).
func (sh *Shell) command(lead, cmd string) {
	for _, l := range strings.Split(commandLines(lead, step.EscapeControls(cmd), sh.Width), "\n") {
		fmt.Fprintln(sh.Out, sh.Theme.Cmd.Render(l))
	}
}
