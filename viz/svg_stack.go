package viz

import (
	"fmt"

	"stepbox/primitives/rootfs"
)

// Limits that keep the stack drawing on a projector's screen.
const (
	svgBandH       = 34
	svgChangesShow = 8 // upper-dir paths listed before "… N more"
)

// stackBand is one band of the drawing.
type stackBand struct {
	class, layer, name, note string
	files                    int
}

// stackBands are the stack's bands from the top: the merged view, the
// upper dir with its changes counted, then the lowers (the middle of a
// tall stack left out). A narrow stack counts a layer's files alone.
func stackBands(snap rootfs.StackSnapshot, narrow bool) []stackBand {
	created, copied, deleted := 0, 0, 0
	for _, c := range snap.Changes {
		switch c.Kind {
		case rootfs.Created:
			created++
		case rootfs.CopiedUp:
			copied++
		case rootfs.Whiteout:
			deleted++
		}
	}
	merged := "merged · / after pivot_root"
	if snap.Entered {
		merged = "merged · the box's /"
	}
	bands := []stackBand{
		{class: "merged", layer: "merged", name: merged},
		{class: "upper", layer: rootfs.UpperName, name: "upper · rw", note: fmt.Sprintf("+%d ~%d -%d", created, copied, deleted), files: snap.Upper.Files},
	}
	lowers := snap.Lowers
	for i := len(lowers) - 1; i >= 0; i-- {
		if len(lowers) > stackLayersShown && i == len(lowers)-1-stackEdgeLayers {
			hidden := len(lowers) - 2*stackEdgeLayers
			bands = append(bands, stackBand{class: "gap", name: fmt.Sprintf("⋮ %d more layers", hidden)})
			i = stackEdgeLayers
		}
		l := lowers[i]
		note := quantity(l.Files, "file")
		if l.Whiteouts > 0 && !narrow {
			note += " · " + quantity(l.Whiteouts, "whiteout")
		}
		bands = append(bands, stackBand{class: "lower", layer: l.Name, name: l.Name + " · ro", note: note, files: l.Files})
	}
	return bands
}

// drawBands draws bands from y, each bandH high with its text at size,
// across the drawing's width, and returns where they end.
// Each band is inset by step more than the one below it, pad is the
// room between a band's edge and its text.
func drawBands(d *svgDoc, bands []stackBand, y, bandH int, size float64, step, pad int) int {
	base := int(float64(bandH)/2 + size*0.35)
	for i, b := range bands {
		// Each band is a little narrower than the one below it: a stack.
		inset := step * (len(bands) - 1 - i)
		if b.class == "merged" {
			inset = 0
		}
		w := d.w() - 2 - 2*inset
		noteW := 0
		if b.note != "" {
			noteW = int(float64(len([]rune(b.note)))*size*svgCharEm) + pad
		}
		d.add(`<g class="layer %s" data-layer="%s" data-files="%d"><rect x="%d" y="%d" width="%d" height="%d" rx="6"/><text x="%d" y="%d">%s</text>`,
			b.class, esc(b.layer), b.files, 1+inset, y, w, bandH, 1+pad+inset, y+base, esc(fit(b.name, w-noteW-2*pad, size)))
		if b.note != "" {
			d.add(`<text x="%d" y="%d" class="note" text-anchor="end">%s</text>`, d.w()-1-pad-inset, y+base, esc(b.note))
		}
		d.add(`</g>`)
		y += bandH + 4
	}
	return y
}

// stackNarrowSVG is the stack beside a second box: its bands alone,
// with the upper dir's changes counted on its band (stack lists them).
func stackNarrowSVG(snap rootfs.StackSnapshot) string {
	d := svgDoc{size: narrowSide}
	d.text(0, 22, "title", fit("layer stack", d.w(), svgTitle))
	d.h = drawBands(&d, stackBands(snap, true), 34, svgBandH-6, svgSmallNarrow, 1, 6) + 2
	return d.finish("stack", "layer stack")
}

// StackSVG draws the layer stack as stacked bands, the way overlayfs
// looks them up: the merged view on top, the box's upper dir, then each
// read-only layer down to the base, with its file count; then the upper
// dir's created (+), copied-up (~) and deleted (-) paths.
func StackSVG(snap rootfs.StackSnapshot) string { return stackSVG(snap, wideSize) }

// stackSVG is StackSVG at size.
func stackSVG(snap rootfs.StackSnapshot, size svgSize) string {
	d := svgDoc{size: size}
	w, small := d.w(), size.small
	d.text(0, 22, "title", fit(fmt.Sprintf("layer stack · %s + upper", quantity(len(snap.Lowers), "layer")), w, svgTitle))
	y := drawBands(&d, stackBands(snap, false), 34, svgBandH, svgText, 2, 11)
	y += 14
	if len(snap.Changes) == 0 {
		d.text(0, y+4, "dim", fit("upper dir empty: the layers as they are", w, small))
		d.h = y + 14
		return d.finish("stack", "layer stack")
	}
	d.text(0, y+4, "label", "changes in the upper dir")
	y += 12
	for i, c := range snap.Changes {
		if i == svgChangesShow {
			d.text(0, y+20, "dim", fmt.Sprintf("… %d more (stack lists them)", len(snap.Changes)-i))
			y += svgRow
			break
		}
		class := map[rootfs.ChangeKind]string{rootfs.Created: "added", rootfs.CopiedUp: "copied", rootfs.Whiteout: "deleted"}[c.Kind]
		why := changeWhy(c)
		whyW := int(float64(len(why))*small*svgCharEm) + 8
		d.add(`<g class="change %s" data-kind="%s" data-path="%s"><text x="4" y="%d" class="kind">%s</text><text x="26" y="%d">%s</text><text x="%d" y="%d" class="why" text-anchor="end">%s</text></g>`,
			class, c.Kind, esc(c.Path), y+20, c.Kind, y+20, esc(fitMiddle(changePath(c), w-30-whyW, svgText)), w-2, y+20, esc(why))
		y += svgRow - 4
	}
	d.h = y + 10
	return d.finish("stack", "layer stack")
}
