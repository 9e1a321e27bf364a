// Package devices is the devices cgroup's rules: which device nodes a
// box may open or make. On cgroup v1 they are lines written to
// devices.deny and devices.allow; on cgroup v2 there are no such files,
// and the same rules become an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the box's cgroup (program.go).
package devices

import (
	"fmt"
	"strconv"
	"strings"
)

// Any is * as a major or minor number.
const Any = -1

// Rule is one line of the v1 syntax, `TYPE MAJOR:MINOR ACCESS` (`c 1:3
// rwm`, `b *:* m`), or `a` for every device and every access.
type Rule struct {
	Allow  bool
	Type   byte  // 'a' all, 'b' block, 'c' char
	Major  int64 // Any for *
	Minor  int64
	Access string // a subset of "rwm", in that order
}

// String is the rule as devices.allow, devices.deny and devices.list
// read it.
func (r Rule) String() string {
	if r.Type == 'a' {
		return "a *:* rwm"
	}
	num := func(n int64) string {
		if n == Any {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// Verb is allow or deny.
func (r Rule) Verb() string {
	if r.Allow {
		return "allow"
	}
	return "deny"
}

// Syntax is what ParseRule accepts, for error messages.
const Syntax = "TYPE MAJOR:MINOR ACCESS, TYPE one of a b c, MAJOR and MINOR a number or *, ACCESS some of r w m (`c 1:3 rwm`, `b *:* m`), or `a` alone"

// ParseRule reads one rule in the v1 syntax (Documentation/admin-guide/
// cgroup-v1/devices.rst), as allow or deny.
func ParseRule(s string, allow bool) (Rule, error) {
	f := strings.Fields(s)
	bad := func(why string) (Rule, error) {
		return Rule{}, fmt.Errorf("device rule %q: %s; want %s", s, why, Syntax)
	}
	if len(f) == 1 && f[0] == "a" {
		return Rule{Allow: allow, Type: 'a', Major: Any, Minor: Any, Access: "rwm"}, nil
	}
	if len(f) != 3 {
		return bad(fmt.Sprintf("%d words", len(f)))
	}
	r := Rule{Allow: allow}
	switch f[0] {
	case "a", "b", "c":
		r.Type = f[0][0]
	default:
		return bad("type " + f[0])
	}
	maj, min, ok := strings.Cut(f[1], ":")
	if !ok {
		return bad("no MAJOR:MINOR in " + f[1])
	}
	var err error
	if r.Major, err = number(maj); err != nil {
		return bad("major " + maj)
	}
	if r.Minor, err = number(min); err != nil {
		return bad("minor " + min)
	}
	if f[2] == "" || len(f[2]) > 3 {
		return bad("access " + f[2])
	}
	for _, c := range f[2] {
		if !strings.ContainsRune("rwm", c) || strings.Count(f[2], string(c)) > 1 {
			return bad("access " + f[2])
		}
	}
	for _, c := range "rwm" {
		if strings.ContainsRune(f[2], c) {
			r.Access += string(c)
		}
	}
	if r.Type == 'a' && (r.Major != Any || r.Minor != Any || r.Access != "rwm") {
		return bad("type a means every device and access: write `a` alone")
	}
	return r, nil
}

// number reads a major or minor: * or a decimal the kernel takes (u32).
func number(s string) (int64, error) {
	if s == "*" {
		return Any, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("not a device number")
	}
	return int64(n), nil
}

// Docker is Docker's default: deny every device, then allow mknod of
// any, and the few a container needs. Docker's spec (moby's
// daemon/pkg/oci/defaults.go) allows null, zero, urandom, random, tty
// and console (c 5:1) and denies fuse (c 10:229); runc appends its
// AllowedDevices: mknod of any, and null, random, full, tty, zero,
// urandom, the pts, ptmx and tun. This is the union, each device once:
// fuse's deny changes nothing after the deny of every device, and the
// mknod rule runc appends after it lets fuse be made all the same.
func Docker() []Rule {
	rules := []Rule{{Allow: false, Type: 'a', Major: Any, Minor: Any, Access: "rwm"}}
	for _, s := range []string{
		"c *:* m", "b *:* m",
		"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 1:8 rwm", "c 1:9 rwm",
		"c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm",
	} {
		r, _ := ParseRule(s, true)
		rules = append(rules, r)
	}
	return rules
}

// Allows reports whether rules let a process open (or mknod, with
// access "m") device typ major:minor: the last rule that matches
// decides, and with none every access is allowed, as in a new cgroup.
// It is what Program compiles.
func Allows(rules []Rule, typ byte, major, minor int64, access string) bool {
	for i := len(rules) - 1; i >= 0; i-- {
		if rules[i].matches(typ, major, minor, access) {
			return rules[i].Allow
		}
	}
	return true
}

func (r Rule) matches(typ byte, major, minor int64, access string) bool {
	if r.Type != 'a' && r.Type != typ {
		return false
	}
	if r.Major != Any && r.Major != major || r.Minor != Any && r.Minor != minor {
		return false
	}
	// An allow rule must grant every access asked for; a deny rule
	// refuses if it names any of them.
	for _, c := range access {
		if in := strings.ContainsRune(r.Access, c); in != r.Allow {
			return !r.Allow
		}
	}
	return r.Allow
}
