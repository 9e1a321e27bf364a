package rootfs_test

import (
	"strings"
	"testing"

	"stepbox/primitives/rootfs"
)

func fixtureTables(t *testing.T) (host, box rootfs.MountTable) {
	t.Helper()
	var err error
	if host, err = rootfs.MountsIn("testdata/proc", 1000); err != nil {
		t.Fatal(err)
	}
	if box, err = rootfs.MountsIn("testdata/proc", 4242); err != nil {
		t.Fatal(err)
	}
	return host, box
}

func TestMountsInReadsMountinfo(t *testing.T) {
	host, box := fixtureTables(t)
	if len(host.Mounts) != 6 || len(box.Mounts) != 6 || box.PID != 4242 {
		t.Fatalf("host %d mounts, box %d", len(host.Mounts), len(box.Mounts))
	}
	root := box.Mounts[0]
	if root.Point != "/" || root.FSType != "overlay" || root.Propagation != "private" || root.Options != "rw,relatime" {
		t.Errorf("box root = %+v", root)
	}
	if !strings.HasPrefix(root.Super, "rw,lowerdir=/var/lib/stepbox/layers/app/root:") {
		t.Errorf("super options = %q", root.Super)
	}
	if sys := box.Mounts[4]; sys.Propagation != "master:7" || sys.Options != "ro,nodev,noexec,nosuid,relatime" {
		t.Errorf("box /sys = %+v", sys)
	}
	if vol := box.Mounts[5]; vol.Root != "/srv/www" || vol.Dev != "253:1" {
		t.Errorf("bind volume = %+v", vol)
	}
	if host.Mounts[0].Propagation != "shared:1" {
		t.Errorf("host / propagation = %q", host.Mounts[0].Propagation)
	}
}

func TestDiffMountsPairsByMountPoint(t *testing.T) {
	host, box := fixtureTables(t)
	d := rootfs.DiffMounts(host, box)
	var added, removed, changed []string
	for _, m := range d.Added {
		added = append(added, m.Point)
	}
	for _, m := range d.Removed {
		removed = append(removed, m.Point)
	}
	for _, c := range d.Changed {
		changed = append(changed, c.Box.Point+":"+strings.Join(c.What, ","))
	}
	if got := strings.Join(added, " "); got != "/srv/www" {
		t.Errorf("added %s", got)
	}
	if got := strings.Join(removed, " "); got != "/run" {
		t.Errorf("removed %s", got)
	}
	want := "/:fstype,source,device,options,propagation /proc:device,propagation /dev:fstype,source,device,options,propagation " +
		"/dev/pts:device,options,propagation /sys:options,propagation"
	if got := strings.Join(changed, " "); got != want {
		t.Errorf("changed:\n%s\nwant:\n%s", got, want)
	}
	if d := rootfs.DiffMounts(host, host); len(d.Added)+len(d.Removed)+len(d.Changed) != 0 || d.Same != 6 {
		t.Errorf("a table differs from itself: %+v", d)
	}
}
