package viz

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// ImageRow is one line of `images`.
type ImageRow struct {
	Name     string
	Digest   string
	Platform string
	Layers   int
	Size     int64 // compressed bytes of all layers
	Source   string
}

// ImagesPanel lists the images, as `docker images` does.
func ImagesPanel(rows []ImageRow, width int, t Theme) string {
	if len(rows) == 0 {
		return t.Dim.Render("no images yet: `image pull REF` or `image load PATH` adds one")
	}
	headers := []string{"image", "digest", "platform", "layers", "size", "from"}
	var body [][]string
	for _, r := range rows {
		body = append(body, []string{Escape(r.Name), shortDigest(r.Digest), Escape(r.Platform), fmt.Sprint(r.Layers), Bytes(r.Size), truncateMiddle(Escape(r.Source), 40)})
	}
	style := func(row, col int) lipgloss.Style {
		if col == 1 || col == 5 {
			return t.Dim
		}
		return t.Same
	}
	return t.renderTable(headers, body, style, width)
}

// ImageLayerRow is one layer in `image show`: what made it and what it
// changes in the layers below (dive's view, opaque directories too).
type ImageLayerRow struct {
	Index     int
	Layer     string
	Size      int64
	CreatedBy string
	Skipped   string   // what reading the layer left out, or ""
	Added     []string // a directory ends in "/"
	Modified  []string
	Removed   []string // whiteouts; an opaque dir shows as "DIR/*"
}

// files counts the paths that are not directories: the layer stack
// counts files, and the table counts them the same way.
func files(paths []string) int {
	n := 0
	for _, p := range paths {
		if !strings.HasSuffix(p, "/") {
			n++
		}
	}
	return n
}

// ImageShowPanel shows each layer of an image, bottom first, with up to
// perLayer paths of each kind.
func ImageShowPanel(name string, rows []ImageLayerRow, perLayer, width int, t Theme) string {
	headers := []string{"#", "layer", "size", "made by", "+ files", "~ modified", "- removed"}
	var body [][]string
	for _, r := range rows {
		body = append(body, []string{fmt.Sprint(r.Index), Escape(r.Layer), Bytes(r.Size), truncate(Escape(oneLine(r.CreatedBy)), 50),
			fmt.Sprint(files(r.Added)), fmt.Sprint(len(r.Modified)), fmt.Sprint(len(r.Removed))})
	}
	style := func(row, col int) lipgloss.Style {
		switch col {
		case 4:
			return t.Added
		case 5:
			return t.Copied
		case 6:
			return t.Deleted
		}
		return t.Same
	}
	parts := []string{t.Title.Render("image " + Escape(name)), t.renderTable(headers, body, style, width)}
	for _, r := range rows {
		var b strings.Builder
		list := func(mark string, st lipgloss.Style, paths []string) {
			for i, p := range paths {
				if i == perLayer {
					fmt.Fprintf(&b, "    %s\n", t.Dim.Render(fmt.Sprintf("… %d more", len(paths)-perLayer)))
					break
				}
				fmt.Fprintf(&b, "    %s\n", st.Render(mark+" "+Escape(p)))
			}
		}
		list("-", t.Deleted, r.Removed)
		list("~", t.Copied, r.Modified)
		list("+", t.Added, r.Added)
		if r.Skipped != "" {
			fmt.Fprintf(&b, "    %s\n", t.Changed.Render("not all read: "+Escape(r.Skipped)))
		}
		if b.Len() > 0 {
			parts = append(parts, fmt.Sprintf("  layer %d (%s):\n%s", r.Index, Escape(r.Layer), strings.TrimRight(b.String(), "\n")))
		}
	}
	return strings.Join(parts, "\n")
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "/bin/sh -c ")
	return strings.Join(strings.Fields(s), " ")
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// Bytes is n in B, kB, MB or GB, as docker shows sizes.
func Bytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fGB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fMB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fkB", float64(n)/1e3)
	}
	return fmt.Sprintf("%dB", n)
}

// ProgressLine is one layer's line while an image is fetched: a bar on
// a terminal (bar true), words otherwise.
func ProgressLine(index, count int, digest, state string, done, total int64, bar bool, t Theme) string {
	head := fmt.Sprintf("layer %d/%d %s", index+1, count, shortDigest(digest))
	if !bar || total <= 0 || state != "fetching" {
		if state == "fetching" || state == "fetched" || state == "present" {
			return fmt.Sprintf("%s: %s %s", head, state, Bytes(total))
		}
		return fmt.Sprintf("%s: %s", head, state)
	}
	const w = 30
	fill := int(int64(w) * done / total)
	return fmt.Sprintf("%s [%s%s] %s / %s", head, t.Added.Render(strings.Repeat("=", fill)), strings.Repeat(" ", w-fill), Bytes(done), Bytes(total))
}

// configShown is how many entries of each list of an image's config
// ImageConfigLine prints, and configEntryMax how many letters of each
// value: a config is the image's to fill, and all 200,000 entries of one
// Env printed 22 MB (ut29 F7).
const (
	configShown    = 10
	configEntryMax = 160
)

// ImageConfigLine is `image show`'s line of an image's config: Env,
// WorkingDir, User, Entrypoint and Cmd, each list cut after configShown
// entries ("… and N more"), each value after configEntryMax letters, and
// every value escaped.
func ImageConfigLine(env []string, workingDir, user string, entrypoint, cmd []string) string {
	return fmt.Sprintf("config: Env %s · WorkingDir %s · User %s · Entrypoint %s · Cmd %s",
		configList(env, false), configValue(workingDir), configValue(user), configList(entrypoint, true), configList(cmd, true))
}

// configValue is one value of a config, quoted (Go's %q escapes every
// control character), cut after configEntryMax letters.
func configValue(v string) string {
	if cut, long := prefix(v, configEntryMax); long {
		return fmt.Sprintf("%q… (%d bytes)", cut, len(v))
	}
	return fmt.Sprintf("%q", v)
}

// configList is a list of a config: quoted as ["a", "b"] (an argv), or
// as its words (Env's NAME=value), and cut after configShown entries.
func configList(list []string, quoted bool) string {
	shown := list[:min(len(list), configShown)]
	parts := make([]string, len(shown))
	for i, v := range shown {
		if quoted {
			parts[i] = configValue(v)
			continue
		}
		cut, long := prefix(v, configEntryMax)
		parts[i] = Escape(cut)
		if long {
			parts[i] += fmt.Sprintf("… (%d bytes)", len(v))
		}
	}
	more := ""
	if n := len(list) - len(shown); n > 0 {
		more = fmt.Sprintf(" … and %d more", n)
	}
	if quoted {
		return "[" + strings.Join(parts, " ") + more + "]"
	}
	return strings.Join(parts, " ") + more
}
