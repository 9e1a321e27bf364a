package primitives

import (
	"fmt"
	"slices"
	"strings"

	"stepbox/primitives/step"
)

// Security is what the box's NEXT commands get: the executor applies it
// in each command's own process just before execve, in runc's order
// (security_wire.go, executor.c). The zero value changes nothing: the
// command inherits the executor's sets (root: every capability), no
// no_new_privs, no seccomp filter.
type Security struct {
	Caps CapSets `json:"caps"`
	// CapsSet says a caps step chose Caps; without one, Caps are the
	// sets the command inherits from the executor.
	CapsSet    bool          `json:"caps_set,omitempty"`
	NoNewPrivs bool          `json:"no_new_privs,omitempty"`
	Seccomp    SeccompFilter `json:"seccomp"`
	Rlimits    []Rlimit      `json:"rlimits,omitempty"`
}

// Rlimit is one setrlimit(2) the command gets.
type Rlimit struct {
	Resource int    `json:"resource"` // RLIMIT_*
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// clone copies the slices, so a change to the copy leaves s alone.
func (s Security) clone() Security {
	s.Rlimits = slices.Clone(s.Rlimits)
	s.Seccomp.Deny = slices.Clone(s.Seccomp.Deny)
	s.Seccomp.Program = slices.Clone(s.Seccomp.Program)
	return s
}

// empty reports whether s asks the executor for nothing.
func (s Security) empty() bool {
	return !s.CapsSet && !s.NoNewPrivs && s.Seccomp.Source == "" && len(s.Rlimits) == 0
}

// Security returns a copy of what the box's next commands get, with the
// capability sets they inherit when no caps step chose them.
func (b *Box) Security() Security {
	pid := b.CommandPID()
	b.mu.Lock()
	s := b.security.clone()
	b.mu.Unlock()
	if !s.CapsSet {
		s.Caps = inheritedCaps(pid)
	}
	return s
}

// inheritedCaps are the sets a command of the executor at pid gets when
// nothing changes them: execve(2) as root gives it its bounding set
// (and inheritable) as permitted and effective, and clears the ambient
// set (capabilities(7), "Transformation of capabilities during execve").
func inheritedCaps(pid int) CapSets {
	c, err := CapsOfPID(pid)
	if err != nil {
		all := AllCaps()
		return CapSets{Bounding: all, Permitted: all, Effective: all}
	}
	p := c.Bounding | c.Inheritable
	return CapSets{Bounding: c.Bounding, Permitted: p, Effective: p, Inheritable: c.Inheritable}
}

// SecurityVerbs are the security steps, as the commands name them.
var SecurityVerbs = []string{"caps docker", "caps drop", "caps keep", "nnp", "nnp off", "seccomp docker", "seccomp deny", "seccomp off"}

// PlanSecurity is the record ApplySecurity(verb, args) would write.
func (b *Box) PlanSecurity(verb string, args []string) (*step.Step, error) {
	_, st, err := b.nextSecurity(verb, args)
	if err != nil {
		return nil, err
	}
	st.MarkNotRun()
	return st, nil
}

// ApplySecurity changes what the box's next commands get: verb is one of
// SecurityVerbs. Bad input changes nothing.
func (b *Box) ApplySecurity(verb string, args []string) (*step.Step, error) {
	next, st, err := b.nextSecurity(verb, args)
	if err != nil {
		return nil, err
	}
	// A process that runs now keeps the filter it has: a new one
	// reaches only the commands started after this step.
	var older []procStamp
	changed := !slices.Equal(next.Seccomp.Program, b.Security().Seccomp.Program)
	if changed {
		older = b.olderStamps()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return nil, b.dead
	}
	if changed {
		b.seccompOlder = older
	}
	b.security = next
	st.Ran()
	return st, nil
}

// nextSecurity works out the settings after the step, and its record.
func (b *Box) nextSecurity(verb string, args []string) (Security, *step.Step, error) {
	cmd := strings.TrimSpace(verb + " " + strings.Join(args, " "))
	next := b.Security()
	var err error
	switch verb {
	case "caps docker", "caps keep", "caps drop":
		err = changeCaps(&next, verb, args)
	case "nnp", "nnp off":
		next.NoNewPrivs = verb == "nnp"
	case "seccomp docker":
		next.Seccomp, err = dockerSeccomp(next.Caps.Bounding)
	case "seccomp deny":
		if len(args) == 0 {
			err = fmt.Errorf("seccomp deny: name the system calls to fail with EPERM, as in `seccomp deny mkdir unshare`")
		} else {
			next.Seccomp, err = denySeccomp(args)
		}
	case "seccomp off":
		next.Seccomp = SeccompFilter{}
	default:
		err = fmt.Errorf("%s: not a security step: use %s", cmd, strings.Join(SecurityVerbs, ", "))
	}
	if err != nil {
		return Security{}, nil, err
	}
	// capset(2) cannot give what the executor's bounding set lacks.
	if have := inheritedCaps(b.CommandPID()).Bounding; next.CapsSet && next.Caps.Permitted&^have != 0 {
		return Security{}, nil, fmt.Errorf("%s: the box's processes cannot get %s: the box process's own bounding set lacks it (`caps show` lists what it has), so capset(2) would fail",
			cmd, strings.Join(DecodeCaps(next.Caps.Permitted&^have), " "))
	}
	// Docker reduces its profile by the final capability set: so does a
	// caps step after `seccomp docker`.
	if next.Seccomp.Source == "docker" && strings.HasPrefix(verb, "caps") {
		if next.Seccomp, err = dockerSeccomp(next.Caps.Bounding); err != nil {
			return Security{}, nil, err
		}
	}
	if err := checkExecutorCalls(cmd, next.Seccomp, next.NoNewPrivs); err != nil {
		return Security{}, nil, err
	}
	return next, securityRecord(cmd, verb, next), nil
}

// changeCaps applies a caps step to s.
func changeCaps(s *Security, verb string, args []string) error {
	var mask uint64
	for _, a := range args {
		if verb == "caps drop" && strings.EqualFold(a, "all") {
			mask |= AllCaps() // as docker run --cap-drop ALL
			continue
		}
		bit, err := ParseCap(a)
		if err != nil {
			return fmt.Errorf("%s: %w", verb, err)
		}
		mask |= 1 << bit
	}
	c := &s.Caps
	switch verb {
	case "caps docker":
		if len(args) > 0 {
			return fmt.Errorf("caps docker: takes no names (it sets Docker's default %d)", len(DecodeCaps(DockerCaps)))
		}
		// Docker sets no inheritable or ambient capabilities since
		// CVE-2022-24769.
		*c = CapSets{Bounding: DockerCaps, Permitted: DockerCaps, Effective: DockerCaps}
	case "caps keep":
		if len(args) == 0 {
			return fmt.Errorf("caps keep: name the capabilities the box keeps, as in `caps keep chown net_bind_service`; an empty set is refused here (a box with none at all is `caps drop all`, said on purpose)")
		}
		*c = CapSets{Bounding: mask, Permitted: mask, Effective: mask, Inheritable: c.Inheritable & mask, Ambient: c.Ambient & mask}
	case "caps drop":
		if len(args) == 0 {
			return fmt.Errorf("caps drop: name the capabilities to drop, as in `caps drop sys_admin net_raw`")
		}
		c.Bounding &^= mask
		c.Permitted &^= mask
		c.Effective &^= mask
		c.Inheritable &^= mask
		c.Ambient &^= mask
	}
	s.CapsSet = true
	return nil
}

// securityRecord is the record of a security step: the calls each later
// command's process will make before execve.
func securityRecord(cmd, verb string, s Security) *step.Step {
	st := &step.Step{
		Command: cmd,
		Man:     []string{"capabilities(7)", "prctl(2)", "capset(2)", "seccomp(2)"},
		Undo:    "a later step changes the settings again (`caps`, `nnp off`, `seccomp off`); a process keeps the sets it started with: capabilities, no_new_privs and filters are fixed at execve and only shrink",
		Notes: []string{"these calls run in the process of each command the box starts after this step (exec, sh, enter), just before execve(2); " +
			"commands already running keep what they have: `exec grep -E 'Cap|NoNewPrivs|Seccomp' /proc/self/status` shows the new ones"},
	}
	what := s.Summary()
	switch {
	case strings.HasPrefix(verb, "caps"):
		st.Man = []string{"capabilities(7)", "capset(2)", "prctl(2)"}
	case strings.HasPrefix(verb, "nnp"):
		st.Man = []string{"prctl(2)", "execve(2)"}
	case strings.HasPrefix(verb, "seccomp"):
		st.Man = []string{"seccomp(2)"}
	}
	st.Tell("the box's next commands will start with "+what+"; nothing changes in the kernel until one starts: its own process makes the calls below",
		"the box's next commands would start with "+what)
	for _, c := range securityCalls(s, nil) {
		st.Plan(c.call)
	}
	st.Shell = []string{securityShell(s)}
	return st
}

// Summary says what the commands get, in a line.
func (s Security) Summary() string {
	parts := []string{fmt.Sprintf("%d of %d capabilities (CapEff)", len(DecodeCaps(s.Caps.Effective)), LastCap()+1)}
	if s.NoNewPrivs {
		parts = append(parts, "no_new_privs")
	} else {
		parts = append(parts, "no no_new_privs")
	}
	switch s.Seccomp.Source {
	case "docker":
		parts = append(parts, fmt.Sprintf("Docker's seccomp profile (%d BPF instructions)", len(s.Seccomp.Program)))
	case "deny":
		parts = append(parts, fmt.Sprintf("a seccomp filter failing %s with EPERM", strings.Join(s.Seccomp.Deny, ", ")))
	default:
		parts = append(parts, "no seccomp filter")
	}
	return strings.Join(parts, ", ")
}

// securityShell is the same with util-linux's setpriv(1), which sets
// capabilities and no_new_privs (not seccomp) before it runs a command.
func securityShell(s Security) string {
	var opts []string
	if s.CapsSet {
		opts = append(opts, "--bounding-set="+capList(s.Caps.Bounding), "--inh-caps="+capList(s.Caps.Inheritable), "--ambient-caps="+capList(s.Caps.Ambient))
	}
	if s.NoNewPrivs {
		opts = append(opts, "--no-new-privs")
	}
	line := "setpriv " + strings.Join(opts, " ") + " -- CMD"
	if s.Seccomp.Source != "" {
		line += "   # seccomp: no standard tool loads a filter for one command; `docker run --security-opt seccomp=PROFILE.json` does"
	}
	return line
}

// capList is a mask in setpriv's form: -all,+chown,+kill.
func capList(mask uint64) string {
	out := []string{"-all"}
	for _, n := range DecodeCaps(mask) {
		out = append(out, "+"+strings.ToLower(strings.TrimPrefix(n, "CAP_")))
	}
	return strings.Join(out, ",")
}
