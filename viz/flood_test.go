package viz

import (
	"strconv"
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/rootfs"
)

// A box decides how many processes and mounts it has: a fork bomb's 4,095
// processes, or a loop of mounts, fill a screen's worth of rows and are
// counted after, never printed one by one.
func TestPanelsOfABoxWithThousandsOfProcessesOrMountsStayOnAScreen(t *testing.T) {
	th := NewTheme("plain")
	const n = 4095
	box := &primitives.ProcessNode{PID: 4250, NSpid: []int{4250}, Comm: "stepbox", Role: "box process", Box: "bomb"}
	for i := range n {
		box.Children = append(box.Children, &primitives.ProcessNode{PID: 5000 + i, NSpid: []int{5000 + i}, Comm: "sh", Box: "bomb"})
	}
	root := &primitives.ProcessNode{PID: 4242, Comm: "stepbox", Role: "session", Children: []*primitives.ProcessNode{box}}
	out := ProcessPanel(root, 100, th)
	if rows := strings.Count(out, "\n"); rows > processRowsMax+12 {
		t.Errorf("the process panel of a fork bomb is %d lines, want at most %d", rows, processRowsMax+12)
	}
	if want := "… and " + strconv.Itoa(n+2-processRowsMax) + " more processes"; !strings.Contains(out, want) {
		t.Errorf("the process panel does not count what it left out (want %q):\n%s", want, out)
	}
	tbl := rootfs.MountTable{PID: 4250}
	for i := range n {
		tbl.Mounts = append(tbl.Mounts, rootfs.Mount{ID: 100 + i, Parent: 99, Point: "/m/" + strconv.Itoa(i), FSType: "tmpfs", Source: "tmpfs", Options: "rw", Root: "/"})
	}
	out = MountsPanel(tbl, 100, th)
	if rows := strings.Count(out, "\n"); rows > mountRowsMax+8 {
		t.Errorf("the mounts panel of %d mounts is %d lines, want at most %d", n, rows, mountRowsMax+8)
	}
	if want := "… and " + strconv.Itoa(n-mountRowsMax) + " more mounts"; !strings.Contains(out, want) {
		t.Errorf("the mounts panel does not count what it left out (want %q)", want)
	}
}
