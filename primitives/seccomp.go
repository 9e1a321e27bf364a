package primitives

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// Seccomp programs are built here, in Go, from runtime-spec rules: moby's
// default profile (github.com/moby/profiles/seccomp, the default.json
// Docker ships, reduced by the box's bounding set as Docker reduces it)
// or a deny list of the learner's own. elastic/go-seccomp-bpf turns the
// rules into classic BPF (x/net/bpf instructions) with its own checks for
// the architecture and the x32 ABI; stepbox puts one more in front, so a
// call made through another architecture's table (int 0x80 on x86_64)
// gets EPERM whatever the rules say: the classic way round a deny list.

// SeccompFilter is the seccomp program the box's next commands get.
type SeccompFilter struct {
	Source  string               `json:"source,omitempty"` // "docker", "deny", or "" for none
	Deny    []string             `json:"deny,omitempty"`   // the calls `seccomp deny` named
	Rules   *specs.LinuxSeccomp  `json:"-"`                // what the program was built from
	Program []bpf.RawInstruction `json:"-"`                // the program, its arch check first
	// Unnumbered counts the rules' names this architecture has no
	// number for (32-bit-only calls such as _llseek): left out.
	Unnumbered int `json:"unnumbered,omitempty"`
}

// seccompArch is the architecture the programs are built for: this one.
func seccompArch() (*arch.Info, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return info, nil
}

// dockerSeccomp is moby's default profile for a process whose bounding
// set is bounding: the rules with includes.caps the set lacks, or
// excludes.caps it has, are left out (as `docker run` does).
func dockerSeccomp(bounding uint64) (SeccompFilter, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: DecodeCaps(bounding)}}}
	rules, err := profiles.GetDefaultProfile(spec)
	if err != nil {
		return SeccompFilter{}, fmt.Errorf("seccomp docker: moby's default profile: %w", err)
	}
	return compileSeccomp(SeccompFilter{Source: "docker", Rules: rules})
}

// denySeccomp fails each named call with EPERM and allows the rest.
func denySeccomp(names []string) (SeccompFilter, error) {
	info, err := seccompArch()
	if err != nil {
		return SeccompFilter{}, err
	}
	known := SyscallNames()
	var deny []string
	for _, n := range names {
		n = strings.ToLower(n)
		if _, ok := info.SyscallNames[n]; !ok {
			return SeccompFilter{}, fmt.Errorf("seccomp deny %s: unknown system call %q on %s (see syscalls(2))%s", step.Cut(n), step.Cut(n), info.Name, DidYouMean(n, known))
		}
		if !slices.Contains(deny, n) {
			deny = append(deny, n)
		}
	}
	eperm := uint(unix.EPERM)
	rules := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: deny, Action: specs.ActErrno, ErrnoRet: &eperm}},
	}
	return compileSeccomp(SeccompFilter{Source: "deny", Deny: deny, Rules: rules})
}

// compileSeccomp builds f.Program from f.Rules.
func compileSeccomp(f SeccompFilter) (SeccompFilter, error) {
	info, err := seccompArch()
	if err != nil {
		return f, err
	}
	def, err := seccompAction(f.Rules.DefaultAction, f.Rules.DefaultErrnoRet)
	if err != nil {
		return f, err
	}
	// The library takes a default action without data: its plain
	// ActionErrno means EPERM, which is also Docker's defaultErrnoRet.
	if def == libseccomp.Action(unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM)) {
		def = libseccomp.ActionErrno
	}
	policy := libseccomp.Policy{DefaultAction: def}
	for _, r := range f.Rules.Syscalls {
		act, err := seccompAction(r.Action, r.ErrnoRet)
		if err != nil {
			return f, err
		}
		g := libseccomp.SyscallGroup{Action: act}
		conds, err := seccompConditions(r.Args)
		if err != nil {
			return f, fmt.Errorf("seccomp %s: rule for %s: %w", f.Source, strings.Join(r.Names, ","), err)
		}
		for _, n := range r.Names {
			switch _, ok := info.SyscallNames[n]; {
			case !ok:
				f.Unnumbered++
			case len(conds) == 0:
				g.Names = append(g.Names, n)
			default:
				g.NamesWithCondtions = append(g.NamesWithCondtions, libseccomp.NameWithConditions{Name: n, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			policy.Syscalls = append(policy.Syscalls, g)
		}
	}
	insts, err := policy.Assemble()
	if err != nil {
		return f, fmt.Errorf("seccomp %s: assemble the BPF program: %w", f.Source, err)
	}
	// Another architecture's calls have other numbers: refuse them all.
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
	}
	f.Program, err = bpf.Assemble(append(guard, insts...))
	if err != nil {
		return f, fmt.Errorf("seccomp %s: assemble the BPF program: %w", f.Source, err)
	}
	if len(f.Program) > unix.BPF_MAXINSNS {
		return f, fmt.Errorf("seccomp %s: the program has %d instructions, more than the kernel's %d (BPF_MAXINSNS)", f.Source, len(f.Program), unix.BPF_MAXINSNS)
	}
	return f, nil
}

func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (libseccomp.Action, error) {
	switch a {
	case specs.ActAllow:
		return libseccomp.ActionAllow, nil
	case specs.ActErrno:
		e := uint(unix.EPERM) // runtime-spec: errnoRet defaults to EPERM
		if errnoRet != nil {
			e = *errnoRet
		}
		return libseccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(e&unix.SECCOMP_RET_DATA)), nil
	case specs.ActKillProcess:
		return libseccomp.ActionKillProcess, nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActionKillThread, nil
	case specs.ActLog:
		return libseccomp.ActionLog, nil
	case specs.ActTrap:
		return libseccomp.ActionTrap, nil
	}
	return 0, fmt.Errorf("seccomp: action %s is not one stepbox builds", a)
}

// seccompConditions turns runtime-spec argument comparisons (all must
// hold, as libseccomp reads one rule) into the library's.
func seccompConditions(args []specs.LinuxSeccompArg) (libseccomp.ArgumentConditions, error) {
	var out libseccomp.ArgumentConditions
	for _, a := range args {
		c := libseccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = libseccomp.Equal
		case specs.OpNotEqual:
			c.Operation = libseccomp.NotEqual
		case specs.OpLessThan:
			c.Operation = libseccomp.LessThan
		case specs.OpLessEqual:
			c.Operation = libseccomp.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = libseccomp.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = libseccomp.GreaterOrEqual
		case specs.OpMaskedEqual:
			// (arg & mask) == 0 is "none of these bits set".
			if a.ValueTwo != 0 {
				return nil, fmt.Errorf("argument %d: SCMP_CMP_MASKED_EQ with a non-zero value is not supported", a.Index)
			}
			c.Operation = libseccomp.BitsNotSet
		default:
			return nil, fmt.Errorf("argument %d: comparison %s is not supported", a.Index, a.Op)
		}
		out = append(out, c)
	}
	return out, nil
}

// SeccompVerdict runs the program on a call with every argument 0, as the
// kernel would (x/net/bpf's VM), and returns the action it takes.
func (f SeccompFilter) SeccompVerdict(name string) (uint32, error) {
	info, err := seccompArch()
	if err != nil {
		return 0, err
	}
	nr, ok := info.SyscallNames[name]
	if !ok {
		return 0, fmt.Errorf("seccomp: no system call %q on %s", name, info.Name)
	}
	insts, ok := bpf.Disassemble(f.Program)
	if !ok {
		return 0, fmt.Errorf("seccomp: the program holds an instruction x/net/bpf cannot read")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		return 0, fmt.Errorf("seccomp: %w", err)
	}
	// struct seccomp_data: nr, arch, instruction_pointer, args[6]. The
	// kernel loads native-endian words; the VM loads big-endian ones.
	in := make([]byte, 64)
	binary.BigEndian.PutUint32(in[0:], uint32(nr))
	binary.BigEndian.PutUint32(in[4:], uint32(info.ID))
	v, err := vm.Run(in)
	return uint32(v), err
}

// executorCalls are the calls the command's own process makes after its
// filter is installed and before execve has replaced the executor's code
// (executor.c, security_before_ids…security_last): without no_new_privs
// the filter goes in early, before the capabilities are dropped.
func executorCalls(nnp bool) []string {
	if nnp {
		return []string{"execve"}
	}
	return []string{"prctl", "setgroups", "setresgid", "setresuid", "capset", "close_range", "rt_sigprocmask", "execve"}
}

// checkExecutorCalls refuses a filter that would stop the executor
// before it reaches execve.
func checkExecutorCalls(cmd string, f SeccompFilter, nnp bool) error {
	if f.Source == "" {
		return nil
	}
	for _, call := range executorCalls(nnp) {
		act, err := f.SeccompVerdict(call)
		if err != nil {
			return err
		}
		if act&unix.SECCOMP_RET_ACTION_FULL != unix.SECCOMP_RET_ALLOW {
			when := "installs the filter last, under no_new_privs, so only execve(2) runs after it"
			if !nnp {
				when = "installs the filter before it drops capabilities (without no_new_privs the kernel wants CAP_SYS_ADMIN for it), so " +
					strings.Join(executorCalls(false), ", ") + " run after it"
			}
			return fmt.Errorf("%s: the filter blocks %s, which the box's executor calls after installing it, before execve: no command could start. The executor %s; leave those out (or `nnp` first, which leaves only execve)", cmd, call, when)
		}
	}
	return nil
}

// SyscallNames lists the system calls of this architecture by name, for
// completion and did-you-mean.
func SyscallNames() []string {
	info, err := seccompArch()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(info.SyscallNames))
	for n := range info.SyscallNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
