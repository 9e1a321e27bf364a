package primitives

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
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
	// Devices are the lines of the container's devices.list (v1): Docker's
	// rules (deny all; null, zero, random, urandom, tty, console) followed
	// by the ones runc always adds (mknod of any device, full, the ptys,
	// ptmx, tun).
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
	Caps: capMask("chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid",
		"setfcap", "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write"),
	Seccomp: 2,
	Filters: 1,
	Masked: []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap"},
	ReadOnly: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/sys", "/sys/fs/cgroup"},
	Devices: []string{"c 1:5 rwm", "c 1:3 rwm", "c 1:9 rwm", "c 1:8 rwm", "c 5:0 rwm", "c 5:1 rwm",
		"c *:* m", "b *:* m", "c 1:7 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"},
}

// capabilityNames are the capabilities by bit number (capabilities(7),
// linux/capability.h up to CAP_CHECKPOINT_RESTORE, Linux 5.9), lower case
// without CAP_, as capsh prints them.
var capabilityNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// CapabilityNames decodes a capability mask into names, lowest bit
// first; a bit this table does not know is shown by number ("cap_41").
func CapabilityNames(mask uint64) []string {
	var out []string
	for ; mask != 0; mask &= mask - 1 {
		bit := bits.TrailingZeros64(mask)
		if bit < len(capabilityNames) {
			out = append(out, capabilityNames[bit])
		} else {
			out = append(out, fmt.Sprintf("cap_%d", bit))
		}
	}
	return out
}

// capMask is the mask of the named capabilities; an unknown name is a
// bug in a table of this package.
func capMask(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		i := slices.Index(capabilityNames, strings.ToLower(n))
		if i < 0 {
			panic("capMask: unknown capability " + n)
		}
		m |= 1 << i
	}
	return m
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
func (d SecurityDefault) CompareUserNS(own bool) Strictness {
	switch {
	case own == d.UserNS:
		return AsDocker
	case own:
		return Stricter
	}
	return Weaker
}
