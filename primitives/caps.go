package primitives

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/prometheus/procfs"

	"stepbox/primitives/step"
)

// The capability table: one for the steps, the panel and the probes.
// Numbers and names come from moby/sys/capability (generated from the
// kernel's capability.h); the kernel running here may know fewer
// (/proc/sys/kernel/cap_last_cap), which LastCap says.

// CapNames are the capabilities by number: CapNames[21] is CAP_SYS_ADMIN.
var CapNames = func() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		for len(out) < int(c) {
			out = append(out, "")
		}
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}()

// DockerCaps is Docker's default capability set (moby's
// oci/caps/defaults.go): what `docker run` leaves a container.
var DockerCaps = CapMask("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")

// CapMask is the mask of the named capabilities, which must be in CapNames.
func CapMask(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		bit, err := ParseCap(n)
		if err != nil {
			panic(err) // a name of stepbox's own, not the learner's
		}
		m |= 1 << bit
	}
	return m
}

// LastCap is the highest capability this kernel knows.
func LastCap() int {
	c, err := capability.LastCap()
	if err != nil || int(c) >= 64 {
		return len(CapNames) - 1
	}
	return int(c)
}

// AllCaps is every capability this kernel knows: what root starts with.
func AllCaps() uint64 {
	return 1<<(LastCap()+1) - 1
}

// ParseCap takes CAP_SYS_ADMIN, cap_sys_admin or sys_admin to its number.
func ParseCap(name string) (int, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range CapNames {
		if c != "" && c == n && i <= LastCap() {
			return i, nil
		}
	}
	known := CapNames[:LastCap()+1]
	return 0, fmt.Errorf("unknown capability %q: this kernel knows %d, from CAP_CHOWN to %s (`caps show` lists them)%s",
		step.Cut(name), len(known), known[len(known)-1], DidYouMean(n, known))
}

// DecodeCaps names the bits of mask, lowest first; a bit the table has no
// name for shows as its number.
func DecodeCaps(mask uint64) []string {
	out := []string{}
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i < len(CapNames) && CapNames[i] != "" {
			out = append(out, CapNames[i])
		} else {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}

// CapSets are a process's five capability sets (capabilities(7)).
type CapSets struct {
	Bounding, Permitted, Effective, Inheritable, Ambient uint64
}

// Named lists the sets with their names as /proc/PID/status has them.
func (c CapSets) Named() []NamedCapSet {
	return []NamedCapSet{
		{"CapBnd", "bounding", c.Bounding}, {"CapPrm", "permitted", c.Permitted},
		{"CapEff", "effective", c.Effective}, {"CapInh", "inheritable", c.Inheritable},
		{"CapAmb", "ambient", c.Ambient},
	}
}

// NamedCapSet is one set, its /proc/PID/status key and its mask.
type NamedCapSet struct {
	Key, Name string
	Mask      uint64
}

// CapsOfPID reads the capability sets of a running process from
// /proc/PID/status.
func CapsOfPID(pid int) (CapSets, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return CapSets{}, fmt.Errorf("caps %d: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return CapSets{}, fmt.Errorf("caps %d: read /proc/%d/status: %w", pid, pid, err)
	}
	return CapSets{Bounding: st.CapBnd, Permitted: st.CapPrm, Effective: st.CapEff, Inheritable: st.CapInh, Ambient: st.CapAmb}, nil
}
