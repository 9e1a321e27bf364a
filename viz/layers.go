package viz

import (
	"github.com/charmbracelet/lipgloss"
)

// LayerRow is one line of `layers`.
type LayerRow struct {
	Name        string
	Description string
	Builtin     bool
	Locked      bool
	LockedBy    string
	Image       string // the image it was unpacked from
	Path        string
}

// LayersPanel lists the layers: name, what it holds, whether it is
// read-only and where it lives on the host.
func LayersPanel(rows []LayerRow, width int, t Theme) string {
	if len(rows) == 0 {
		return t.Dim.Render("no layers yet: `layer new NAME` makes one")
	}
	headers := []string{"layer", "holds", "state", "host path"}
	var body [][]string
	for _, r := range rows {
		state := "writable"
		switch {
		case r.Builtin:
			state = "built in"
		case r.Image != "":
			state = "read-only (image " + r.Image + ")"
		case r.Locked:
			state = "read-only (" + r.LockedBy + ")"
		}
		// Each value escaped once here (Escape): a name or description
		// an image or the learner chose holding the text \x1b is shown
		// apart from one holding an ESC.
		row := []string{r.Name, r.Description, state, t.short(r.Path)}
		for i, c := range row {
			row[i] = Escape(c)
		}
		body = append(body, row)
	}
	style := func(row, col int) lipgloss.Style {
		if col == 3 {
			return t.Dim
		}
		return t.Same
	}
	// What a layer holds is why the table exists: it folds, never cut.
	return t.withStateNote(t.renderTable(headers, body, style, width, 1), width)
}
