package rootfs

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func tallStack(dir string, n int) []string {
	lowers := make([]string, n) // top first
	for i := range n {
		lowers[n-1-i] = filepath.Join(dir, fmt.Sprintf("layer-%03d", i))
	}
	return lowers
}

// A stack too long for one page goes by fsconfig(lowerdir+) from Linux
// 6.8, relative to the layers' directory before, and is refused with the
// kernel it needs when even that does not fit.
func TestOverlayOptionsFitTheStackToTheKernel(t *testing.T) {
	const page = 4096
	dir := "/var/lib/stepbox/layers/a-directory-long-enough-to-matter"
	upper, work := "/run/stepbox/box/upper", "/run/stepbox/box/work"
	for _, tc := range []struct {
		name    string
		layers  int
		release string
		how     int
		want    string
	}{
		{"three layers on any kernel", 3, "6.1.0-57-cloud-amd64", overlayMount, "lowerdir=" + dir + "/layer-002:"},
		{"a hundred layers on 6.18", 100, "6.18.44", overlayFsconfig, "lowerdir=" + dir + "/layer-099:"},
		{"a hundred layers on 6.1", 100, "6.1.0-57-cloud-amd64", overlayRelative, "lowerdir=layer-099:layer-098:"},
		{"five hundred layers on 6.1", 500, "6.1.0-57-cloud-amd64", -1, "needs Linux 6.8, and this kernel is 6.1.0-57-cloud-amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := overlayOptions(tallStack(dir, tc.layers), upper, work, false, false, page, tc.release)
			if tc.how < 0 {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.how != tc.how || !strings.HasPrefix(req.opts, tc.want) || !strings.HasSuffix(req.opts, ",upperdir="+upper+",workdir="+work) {
				t.Errorf("how %d opts %.80q…, want how %d starting %q", req.how, req.opts, tc.how, tc.want)
			}
			if req.how == overlayRelative && (req.dir != dir || len(req.opts) >= page) {
				t.Errorf("relative to %q with %d bytes of options, want %q and under a page", req.dir, len(req.opts), dir)
			}
		})
	}
}

func TestCommonDirIsTheDeepestDirectoryHoldingEveryLayer(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{"/a/b/l1", "/a/b/l2"}, "/a/b"},
		{[]string{"/a/b/c/l1", "/a/b/l2"}, "/a/b"},
		{[]string{"/a/bc/l1", "/a/b/l2"}, "/a"},
		{[]string{"/x/l1", "/y/l2"}, "/"},
	} {
		if got := commonDir(tc.paths); got != tc.want {
			t.Errorf("commonDir(%q) = %q, want %q", tc.paths, got, tc.want)
		}
	}
}
