// Package viz turns snapshots of live kernel state into strings. Every
// function here is pure: no I/O, no syscalls. Styles live in this file only.
package viz

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Theme holds every style stepbox prints with. Plain themes carry no escape codes.
type Theme struct {
	Name    string // default, contrast or plain
	Plain   bool
	Title   lipgloss.Style // panel titles
	Border  lipgloss.Style // panel frames
	Changed lipgloss.Style // a value that differs from the host's
	Same    lipgloss.Style // a value equal to the host's
	Dim     lipgloss.Style // secondary text (paths, hints)
	Good    lipgloss.Style // success marks
	Bad     lipgloss.Style // errors, limits hit
	Warn    lipgloss.Style // warnings
	Added   lipgloss.Style // '+' created in the upper dir
	Copied  lipgloss.Style // '~' copied up
	Deleted lipgloss.Style // '-' whiteout
	Cmd     lipgloss.Style // echoed commands
	// State is stepbox's state dir, which panels write as $STATE so its
	// paths stay short and readable ("" shows paths as they are).
	State string
}

// NewTheme returns the theme for a terminal: colour, plain (no escape codes,
// for NO_COLOR, --plain and pipes) or high-contrast (for projectors).
func NewTheme(mode string) Theme {
	r := lipgloss.NewRenderer(nil)
	// Tell lipgloss the background is dark ourselves: its own query would
	// answer into go-prompt's input (DESIGN.md, Visualization). The
	// default renderer, which lipgloss's table uses for its own styles,
	// gets the flag too.
	r.SetHasDarkBackground(true)
	lipgloss.SetHasDarkBackground(true)
	switch mode {
	case "plain":
		r.SetColorProfile(termenv.Ascii)
	default:
		r.SetColorProfile(termenv.ANSI256)
	}
	s := r.NewStyle
	t := Theme{Name: mode, Plain: mode == "plain"}
	t.Title = s().Bold(true)
	t.Border = s()
	t.Changed = s().Bold(true).Foreground(lipgloss.Color("214"))
	t.Same = s()
	t.Dim = s().Foreground(lipgloss.Color("245"))
	t.Good = s().Foreground(lipgloss.Color("42"))
	t.Bad = s().Bold(true).Foreground(lipgloss.Color("203"))
	t.Warn = s().Foreground(lipgloss.Color("220"))
	t.Added = s().Foreground(lipgloss.Color("42"))
	t.Copied = s().Foreground(lipgloss.Color("214"))
	t.Deleted = s().Foreground(lipgloss.Color("203"))
	t.Cmd = s().Bold(true).Foreground(lipgloss.Color("39"))
	if mode == "contrast" {
		t.Changed = s().Bold(true).Reverse(true)
		t.Dim = s()
		t.Good = s().Bold(true).Foreground(lipgloss.Color("15"))
		t.Bad = s().Bold(true).Underline(true).Foreground(lipgloss.Color("15"))
		t.Added = s().Bold(true)
		t.Copied = s().Bold(true).Underline(true)
		t.Deleted = s().Bold(true).Reverse(true)
		t.Cmd = s().Bold(true).Underline(true)
	}
	return t
}
