package viz

import (
	"strings"
	"testing"

	"stepbox/primitives"
)

// BenchmarkProcessPanelOfLongCommandLines draws the panel of a box whose
// ten processes each carry as long a command line as a snapshot reads
// (ut25 F8): the cut of each cell to the screen is what it measures.
func BenchmarkProcessPanelOfLongCommandLines(b *testing.B) {
	box := &primitives.ProcessNode{PID: 4250, NSpid: []int{4250}, Comm: "stepbox", Role: "box process", Box: "z"}
	long := "sh -c sleep 30; : " + strings.Repeat("a", 4096)
	for i := range 10 {
		box.Children = append(box.Children, &primitives.ProcessNode{PID: 5000 + i, NSpid: []int{5000 + i, 2 + i}, Comm: "sh", Cmdline: long, Box: "z"})
	}
	root := &primitives.ProcessNode{PID: 4242, Comm: "stepbox", Role: "session", Children: []*primitives.ProcessNode{box}}
	th := NewTheme("plain")
	for b.Loop() {
		ProcessPanel(root, 100, th)
	}
}
