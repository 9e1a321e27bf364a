package rootfs

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// How an overlay's options reach the kernel. mount(2) copies its data
// argument into one page (copy_mount_options in fs/namespace.c), so a
// "lowerdir=…,upperdir=…,workdir=…" string longer than that is cut. Linux
// 6.8 added fsconfig(FSCONFIG_SET_STRING, "lowerdir+") to add the layers
// one by one ("ovl: add support for appending lowerdirs one by one"),
// which keeps host paths in mountinfo. Before 6.8 fsconfig copies every
// option into the same single page (legacy_parse_param: EINVAL), so the
// way left is Docker's overlay2 one: give the layers relative to a
// directory they share and mount from there.
const (
	overlayMount    = iota // one mount(2), host paths
	overlayRelative        // one mount(2) after chdir(dir), layers relative to dir
	overlayFsconfig        // fsopen, fsconfig per layer, fsmount, move_mount
)

// overlayRequest is how MountOverlay hands a stack to the kernel, decided
// before anything is created.
type overlayRequest struct {
	how    int
	opts   string   // mount(2)'s data, as `mount -o` takes it
	lowers []string // top first, as the kernel gets them (relative to dir for overlayRelative)
	dir    string   // overlayRelative: the directory the layers are relative to
}

// fsconfigStringMax is the longest string fsconfig(2) takes, NUL
// included (strndup_user(value, 256) in fs/fsopen.c).
const fsconfigStringMax = 256

// lowerdirPlusRelease is the first kernel whose overlayfs takes lowerdir+.
const lowerdirPlusRelease = "6.8"

// overlayOptions picks how to pass lowers (top first), upper and work to
// the kernel: one mount(2) when the options fit in page bytes; else, when
// release (uname -r) takes lowerdir+, fsconfig; else one mount(2) with the
// layers relative to their common directory; else it refuses, naming the
// kernel that would take the stack.
func overlayOptions(lowers []string, upper, work string, userxattr, xino bool, page int, release string) (overlayRequest, error) {
	opts := func(ls []string) string {
		o := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(ls, ":"), upper, work)
		if userxattr {
			// Inside a user namespace overlayfs keeps its whiteouts and
			// opaque marks in user.overlay.* xattrs (Linux ≥ 5.11).
			o += ",userxattr"
		}
		if xino {
			o += ",xino=on"
		}
		return o
	}
	abs := opts(lowers)
	if len(abs) < page {
		return overlayRequest{how: overlayMount, opts: abs, lowers: lowers}, nil
	}
	if releaseAtLeast(release, lowerdirPlusRelease) {
		for _, d := range append(append([]string{}, lowers...), upper, work) {
			if len(d) >= fsconfigStringMax {
				return overlayRequest{}, fmt.Errorf("%s: a path this long (%d bytes) cannot be passed to fsconfig(2), which a stack this tall needs; use shorter paths", d, len(d))
			}
		}
		return overlayRequest{how: overlayFsconfig, opts: abs, lowers: lowers}, nil
	}
	dir := commonDir(lowers)
	rel := make([]string, len(lowers))
	for i, l := range lowers {
		r, err := filepath.Rel(dir, l)
		if err != nil {
			return overlayRequest{}, fmt.Errorf("layer %s relative to %s: %w", l, dir, err)
		}
		rel[i] = r
	}
	short := opts(rel)
	if len(short) < page {
		return overlayRequest{how: overlayRelative, opts: short, lowers: rel, dir: dir}, nil
	}
	return overlayRequest{}, fmt.Errorf("%d layers take %d bytes of options, more than the one page (%d) mount(2) copies, and still %d relative to %s; "+
		"adding them one by one with fsconfig(lowerdir+) needs Linux %s, and this kernel is %s: stack fewer layers",
		len(lowers), len(abs), page, len(short), dir, lowerdirPlusRelease, release)
}

// commonDir is the deepest directory holding every path in paths.
func commonDir(paths []string) string {
	dir := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for dir != "/" && !strings.HasPrefix(p, dir+"/") {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

// releaseAtLeast compares the major.minor of a kernel release
// ("6.1.0-57-cloud-amd64") with want ("6.8"); an unreadable release
// counts as new.
func releaseAtLeast(release, want string) bool {
	var major, minor, wantMajor, wantMinor int
	if n, _ := fmt.Sscanf(release, "%d.%d", &major, &minor); n < 2 {
		return true
	}
	fmt.Sscanf(want, "%d.%d", &wantMajor, &wantMinor)
	return major > wantMajor || (major == wantMajor && minor >= wantMinor)
}

// kernelRelease is `uname -r`.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
