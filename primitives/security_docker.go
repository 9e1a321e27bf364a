package primitives

import (
	"slices"

	"stepbox/primitives/devices"
	"stepbox/primitives/rootfs"
)

// SecurityDefault is what a runtime gives a container's process unless
// told otherwise.
type SecurityDefault struct {
	// Caps are the bounding, permitted and effective sets; the
	// inheritable and ambient sets are empty.
	Caps       uint64
	NoNewPrivs bool
	Seccomp    int // the mode: 2, a filter
	Filters    int // how many filters the process starts with
	Masked     []string
	// ReadOnly are the read-only paths of the spec, then the mounts
	// Docker makes read-only: /sys and the cgroup filesystem.
	ReadOnly []string
	// Devices are the rules that allow, as the container's devices.list
	// shows them.
	Devices []string
	UserNS  bool
}

// DockerDefault is `docker run IMAGE` with no --cap-add, --security-opt,
// --privileged or userns-remap: moby's oci/defaults.go and
// oci/caps/defaults.go, runc's AllowedDevices. Since Docker 20.10.14 the
// inheritable set is empty (CVE-2022-24769); no_new_privs is opt-in
// (--security-opt no-new-privileges); the default seccomp profile is one
// filter; a user namespace only with the daemon's userns-remap.
var DockerDefault = SecurityDefault{
	Caps:     DockerCaps,
	Seccomp:  2,
	Filters:  1,
	Masked:   rootfs.MaskedPaths,
	ReadOnly: append(slices.Clone(rootfs.ReadonlyPaths), "/sys", "/sys/fs/cgroup"),
	Devices:  allowLines(devices.Docker()),
}

// Strictness compares a setting with Docker's default.
type Strictness int

const (
	AsDocker Strictness = iota // the same as Docker's default
	Weaker                     // lets the process do more than Docker's would
	Stricter                   // lets it do less
	Unread                     // could not be read
)

// CompareCaps compares a capability set with Docker's default set d.
func CompareCaps(mask, d uint64) Strictness {
	switch {
	case mask == d:
		return AsDocker
	case mask&^d != 0:
		return Weaker
	}
	return Stricter
}

// CompareNoNewPrivs compares no_new_privs with Docker's default.
func (d SecurityDefault) CompareNoNewPrivs(on bool) Strictness {
	switch {
	case on == d.NoNewPrivs:
		return AsDocker
	case on:
		return Stricter
	}
	return Weaker
}

// CompareSeccomp compares a seccomp mode and filter count with Docker's
// default. /proc shows how many filters, not what they allow: one filter
// or more counts as Docker's.
func (d SecurityDefault) CompareSeccomp(mode, filters int) Strictness {
	switch {
	case mode < d.Seccomp:
		return Weaker
	case mode == 2 && filters == 0:
		return Weaker
	}
	return AsDocker
}

// ComparePaths compares guarded paths with Docker's, which covers each.
func ComparePaths(paths []GuardedPath) Strictness {
	for _, p := range paths {
		if !p.Covered() {
			return Weaker
		}
	}
	return AsDocker
}

// CompareDevices compares device rules with Docker's default: a rule
// Docker's list does not hold lets the box reach more devices (or holds
// what only v2's program could tell).
func (d SecurityDefault) CompareDevices(r DeviceList) Strictness {
	if r.Unread != "" || r.Rules == nil {
		return Unread
	}
	for _, rule := range r.Rules {
		if !slices.Contains(d.Devices, rule) {
			return Weaker
		}
	}
	if len(r.Rules) < len(d.Devices) {
		return Stricter
	}
	return AsDocker
}

// CompareUserNS compares having a user namespace with Docker's default.
// One whose uid 0 maps to the host's uid 0 counts as none: the kernel's
// uid checks (kill(2), file modes) see the box's root as the host's.
func (d SecurityDefault) CompareUserNS(own, rootIsHostRoot bool) Strictness {
	own = own && !rootIsHostRoot
	switch {
	case own == d.UserNS:
		return AsDocker
	case own:
		return Stricter
	}
	return Weaker
}
