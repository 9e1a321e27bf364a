package primitives

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// KernelRelease is the running kernel's release, as `uname -r` prints it.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// ReleaseAtLeast tells whether kernel release ("6.1.0-57-cloud-amd64") is
// version want ("6.3") or newer, comparing major.minor; a release it
// cannot read counts as new, so nothing is refused on a guess.
func ReleaseAtLeast(release, want string) bool {
	var major, minor, wantMajor, wantMinor int
	if n, _ := fmt.Sscanf(release, "%d.%d", &major, &minor); n < 2 {
		return true
	}
	fmt.Sscanf(want, "%d.%d", &wantMajor, &wantMinor)
	return major > wantMajor || (major == wantMajor && minor >= wantMinor)
}
