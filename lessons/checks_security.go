package lessons

import (
	"fmt"
	"strings"

	"stepbox/primitives"
)

// Checks on what runc applies before exec: the privileges of the box's
// newest command (/proc/PID/status: a setting reaches only the commands
// started after its step), its guarded paths (mountinfo) and its device
// rules (devices.list), each compared with Docker's default.

var (
	noCommand = "Nothing of the box's own is running, so there is nothing to read the setting from: start the app again, `exec sh -c 'sleep 3600 >/dev/null 2>&1 &'`."
	oldApp    = "The newest command of the box was started before the step: a setting reaches only the commands started after it. Start the app again: `exec sh -c 'sleep 3600 >/dev/null 2>&1 &'`."
	noPanel   = "The box's security could not be read (see what the check saw): is its PID 1 still there? `security` says why."
)

// newestCommand returns the privileges of the command the box started
// last, or a failing result.
func newestCommand(b *BoxState) (primitives.ProcSecurity, *Result) {
	if len(b.Commands) == 0 {
		r := fail("no-command", "box %s: no command of its own is running", b.Name)
		return primitives.ProcSecurity{}, &r
	}
	return b.Commands[len(b.Commands)-1], nil
}

// judgeCommand judges the newest command of a box: fn says what is wrong
// with it ("" when nothing is), and what the check saw.
func judgeCommand(s *State, finding string, fn func(p primitives.ProcSecurity) (bad bool, saw string)) Result {
	return judgeBoxes(s, func(b *BoxState) Result {
		p, r := newestCommand(b)
		if r != nil {
			return *r
		}
		bad, saw := fn(p)
		if bad {
			return fail(finding, "box %s: %s (PID %d) %s", b.Name, p.Comm, p.PID, saw)
		}
		return pass("box %s: %s (PID %d) %s", b.Name, p.Comm, p.PID, saw)
	})
}

// judgeSecurity judges the box's security snapshot.
func judgeSecurity(s *State, fn func(b *BoxState, sec *primitives.SecuritySnapshot) Result) Result {
	return judgeBoxes(s, func(b *BoxState) Result {
		if b.Security == nil {
			return fail("unread", "box %s: its security could not be read", b.Name)
		}
		return fn(b, b.Security)
	})
}

func init() {
	d := primitives.DockerDefault
	register(
		&Check{
			Name: "caps-docker", Usage: "caps-docker", Summary: "the box's newest command has no capability beyond Docker's default 14, in any set",
			Findings: map[string]string{"no-command": noCommand, "caps-beyond": "The newest command still holds capabilities Docker's default drops: `caps docker`, then start the app again. " + oldApp},
			Run: func(s *State, _ []string) Result {
				return judgeCommand(s, "caps-beyond", func(p primitives.ProcSecurity) (bool, string) {
					extra := primitives.DecodeCaps((p.CapBnd | p.CapPrm | p.CapEff | p.CapInh | p.CapAmb) &^ d.Caps)
					if len(extra) > 0 {
						return true, fmt.Sprintf("holds %d capabilities beyond Docker's (%s)", len(extra), strings.Join(extra, " "))
					}
					return false, fmt.Sprintf("CapEff %016x: %d capabilities, none beyond Docker's", p.CapEff, len(primitives.DecodeCaps(p.CapEff)))
				})
			},
		},
		&Check{
			Name: "nnp", Usage: "nnp", Summary: "the box's newest command runs with no_new_privs",
			Findings: map[string]string{"no-command": noCommand, "nnp-off": "NoNewPrivs is 0 for the newest command: `nnp`, then start the app again. " + oldApp},
			Run: func(s *State, _ []string) Result {
				return judgeCommand(s, "nnp-off", func(p primitives.ProcSecurity) (bool, string) {
					if !p.NoNewPrivs {
						return true, "has NoNewPrivs 0"
					}
					return false, "has NoNewPrivs 1"
				})
			},
		},
		&Check{
			Name: "seccomp-filter", Usage: "seccomp-filter", Summary: "the box's newest command runs under a seccomp filter",
			Findings: map[string]string{"no-command": noCommand, "no-filter": "The newest command has no seccomp filter: `seccomp docker`, then start the app again. " + oldApp},
			Run: func(s *State, _ []string) Result {
				return judgeCommand(s, "no-filter", func(p primitives.ProcSecurity) (bool, string) {
					if d.CompareSeccomp(p.Seccomp, p.SeccompFilters) == primitives.Weaker {
						return true, fmt.Sprintf("has Seccomp %d, %d filters", p.Seccomp, p.SeccompFilters)
					}
					return false, fmt.Sprintf("has Seccomp %d, %d filters", p.Seccomp, p.SeccompFilters)
				})
			},
		},
		&Check{
			Name: "paths-masked", Usage: "paths-masked", Summary: "each of Docker's masked paths the box has is masked, each of its read-only paths is read-only",
			Findings: map[string]string{"unread": noPanel, "open-path": "A path Docker masks or makes read-only is open in the box: `mount mask`."},
			Run: func(s *State, _ []string) Result {
				return judgeSecurity(s, func(b *BoxState, sec *primitives.SecuritySnapshot) Result {
					n := 0
					for _, p := range append(append([]primitives.GuardedPath{}, sec.Masked...), sec.ReadOnly...) {
						if !p.Covered() {
							return fail("open-path", "box %s: %s is open", b.Name, p.Path)
						}
						if p.Guard != "absent" {
							n++
						}
					}
					return pass("box %s: %d of Docker's paths masked or read-only, the others absent", b.Name, n)
				})
			},
		},
		&Check{
			Name: "devices-docker", Usage: "devices-docker", Summary: "the box's devices cgroup allows no device beyond Docker's default rules",
			Findings: map[string]string{
				"unread":       noPanel,
				"all-devices":  "The box's cgroup lets it open any device (devices.list: a *:* rwm): `cgroup devices docker`.",
				"extra-device": "The box's cgroup allows a device Docker's default does not: `cgroup devices docker`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeSecurity(s, func(b *BoxState, sec *primitives.SecuritySnapshot) Result {
					r := sec.Devices
					switch d.CompareDevices(r) {
					case primitives.Unread:
						return fail("unread", "box %s: device rules %s", b.Name, r.Unread)
					case primitives.Weaker:
						if strings.Contains(strings.Join(r.Rules, "\n"), "a *:* rwm") {
							return fail("all-devices", "box %s: %s/devices.list holds a *:* rwm", b.Name, r.Cgroup)
						}
						return fail("extra-device", "box %s: %s/devices.list: %s", b.Name, r.Cgroup, strings.Join(r.Rules, ", "))
					}
					return pass("box %s: %d rules in %s/devices.list, none beyond Docker's", b.Name, len(r.Rules), r.Cgroup)
				})
			},
		},
		&Check{
			Name: "host-pid-root", Usage: "host-pid-root", Summary: "a box with a root of its own shares the host's PID namespace, so its /proc shows the host's PID 1",
			Findings: map[string]string{
				"own-pid": "The box has a PID namespace of its own: its PID 1 is stepbox's, not the host's. Make a box without `unshare pid`.",
				"no-root": "The box has no root of its own yet: `unshare mnt`, `mount overlay base`, `pivot_root`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					switch {
					case b.ownNamespace("pid"):
						return fail("own-pid", "box %s: pid is its own", b.Name)
					case !b.FS.Pivoted:
						return fail("no-root", "box %s: not pivoted", b.Name)
					}
					return pass("box %s: its own root, the host's PID namespace", b.Name)
				})
			},
		},
		&Check{
			Name: "docker-default", Usage: "docker-default", Summary: "the box's newest command and its mounts and devices are nowhere weaker than Docker's default",
			Findings: map[string]string{
				"no-command": noCommand, "unread": noPanel,
				"weaker": "A setting is still weaker than Docker's default (see what the check saw): `security` stars it.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeSecurity(s, func(b *BoxState, sec *primitives.SecuritySnapshot) Result {
					p, r := newestCommand(b)
					if r != nil {
						return *r
					}
					for _, c := range []struct {
						name string
						v    primitives.Strictness
					}{
						{"capabilities", primitives.CompareCaps(p.CapBnd|p.CapPrm|p.CapEff, d.Caps)},
						{"inheritable and ambient capabilities", primitives.CompareCaps(p.CapInh|p.CapAmb, 0)},
						{"NoNewPrivs", d.CompareNoNewPrivs(p.NoNewPrivs)},
						{"seccomp", d.CompareSeccomp(p.Seccomp, p.SeccompFilters)},
						{"masked paths", primitives.ComparePaths(sec.Masked)},
						{"read-only paths", primitives.ComparePaths(sec.ReadOnly)},
						{"device rules", d.CompareDevices(sec.Devices)},
					} {
						switch c.v {
						case primitives.Weaker:
							return fail("weaker", "box %s: %s weaker than Docker's default", b.Name, c.name)
						case primitives.Unread:
							return fail("unread", "box %s: %s not read", b.Name, c.name)
						}
					}
					return pass("box %s: %s (PID %d) and the box's mounts and devices are as strict as Docker's default or stricter", b.Name, p.Comm, p.PID)
				})
			},
		},
	)
}
