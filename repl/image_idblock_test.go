package repl

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"stepbox/primitives"
)

// An image's User that is a uid inside another box's ID block would run a
// root box's commands (no user namespace of their own) as that box's host
// uid: they could signal its processes (ut30 F10). mount overlay refuses
// it, naming the uid and the area, and exec and enter refuse such ids too.
func TestAnImageUserInAnotherBoxsIDBlockIsRefusedInARootBox(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new victim --user")
	victim, err := sh.Session.Box("victim")
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", victim.PID()))
	if err != nil {
		t.Fatal(err)
	}
	var inside, outside int
	if _, err := fmt.Sscan(string(m), &inside, &outside); err != nil || inside != 0 {
		t.Fatalf("victim's uid_map %q: %v", m, err)
	}
	img := userImage(t, t.TempDir(), "test/uid:v1", fmt.Sprintf("%d:%d", outside, outside), nil, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	run(t, sh, out, "image load "+img, "new att", "unshare mnt uts ipc")
	msg := strings.Join(strings.Fields(errorOf(t, sh, out, "mount overlay base test/uid:v1")), " ")
	for _, want := range []string{fmt.Sprintf("uid %d", outside), "ID blocks", "no user namespace of its own", "--user"} {
		if !strings.Contains(msg, want) {
			t.Errorf("mount overlay of an image whose User is uid %d (victim's root on the host): the error does not say %q:\n%s", outside, want, msg)
		}
	}
	run(t, sh, out, "pivot_root")
	out.Reset()
	signal := fmt.Sprintf(`exec sh -c 'id -u; kill -0 %d && echo CAN-SIGNAL'`, victim.PID())
	if err := sh.Execute(context.Background(), signal); err != nil {
		t.Fatalf("%s: %v", signal, err)
	}
	if strings.Contains(out.String(), fmt.Sprint(outside)) {
		t.Errorf("box att ran as uid %d, victim's root on the host:\n%s", outside, out)
	}

	// Had the ids got past mount overlay, exec and enter refuse them.
	att, err := sh.Session.Box("att")
	if err != nil {
		t.Fatal(err)
	}
	att.SetProcessDefaults(primitives.ProcessDefaults{Image: "test/uid:v1", User: "x", IDs: &primitives.IDs{UID: uint32(outside), GID: uint32(outside)}})
	for _, line := range []string{signal, "enter -- id -u"} {
		msg := strings.Join(strings.Fields(errorOf(t, sh, out, line)), " ")
		if strings.Contains(msg, "CAN-SIGNAL") || !strings.Contains(msg, fmt.Sprintf("uid %d", outside)) || !strings.Contains(msg, "ID blocks") {
			t.Errorf("%s as uid %d in a box without a user namespace: not refused naming the uid and the area:\n%s", line, outside, msg)
		}
	}
}
