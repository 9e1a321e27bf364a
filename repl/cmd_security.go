package repl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"

	"stepbox/primitives"
	"stepbox/primitives/step"
)

// The security steps: what runc applies before exec, for the commands
// the box starts after the step (primitives/security.go).

// securityStep is a command that changes the box's next commands'
// settings: verb as primitives.ApplySecurity takes it.
func securityStep(verb string, c *Command) *Command {
	c.NeedsBox, c.Recorded = true, true
	c.Plan = func(sh *Shell, call *Call) (*step.Step, error) { return sh.Current().PlanSecurity(verb, call.Args) }
	c.Run = func(sh *Shell, call *Call) error {
		b := sh.Current()
		st, err := b.ApplySecurity(verb, call.Args)
		sh.printStep(st)
		if err != nil {
			return err
		}
		sh.ok("box %s's next commands will start with %s", b.Name, b.Security().Summary())
		return nil
	}
	return c
}

func init() {
	capsShow := &Command{
		Name: "show", Usage: "caps show [PID]", MaxArgs: 1, NeedsBox: true,
		Summary: "the five capability sets of the box's next command, and of its running process (or PID)",
		Kernel:  "reads CapBnd, CapPrm, CapEff, CapInh and CapAmb of /proc/PID/status; the next command's are the settings the executor will apply",
		Example: "caps show", Man: "capabilities(7), proc(5)",
		Run: runCapsShow,
	}
	completeCaps := func(sh *Shell, args []string) []Suggestion {
		var out []Suggestion
		for i, n := range primitives.CapNames {
			if n != "" && i <= primitives.LastCap() {
				out = append(out, Suggestion{Text: strings.ToLower(strings.TrimPrefix(n, "CAP_")), Description: n})
			}
		}
		return out
	}
	nnpOn := securityStep("nnp", &Command{
		Name: "on", Usage: "nnp on", Summary: "the same as `nnp`",
		Kernel: "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)", Example: "nnp on", Man: "prctl(2)",
	})
	register(
		&Command{
			Name: "caps", Group: "security", Usage: "caps [show [PID]|docker|drop CAP…|keep CAP…]", MaxArgs: 1, NeedsBox: true,
			Summary: "the capabilities the box's next commands get: show, Docker's 14, drop or keep by name",
			Kernel:  "the executor calls prctl(PR_CAPBSET_DROP) for each capability left out of the bounding set, then capset(2) and prctl(PR_CAP_AMBIENT) in the command's process before execve(2)",
			Example: "caps drop sys_admin net_raw", Man: "capabilities(7), capset(2), prctl(2)",
			Run: capsShow.Run,
			Sub: []*Command{
				capsShow,
				securityStep("caps docker", &Command{
					Name: "docker", Usage: "caps docker",
					Summary: "Docker's default 14: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE",
					Kernel:  "bounding, permitted and effective become those 14; inheritable and ambient empty, as Docker sets them since CVE-2022-24769",
					Example: "caps docker", Man: "capabilities(7)",
				}),
				securityStep("caps drop", &Command{
					Name: "drop", Usage: "caps drop CAP…|all", MinArgs: 1, MaxArgs: -1,
					Summary: "take capabilities out of every set, e.g. sys_admin or CAP_NET_RAW; all drops every one",
					Kernel:  "prctl(PR_CAPBSET_DROP, CAP) for each, and capset(2) without them: execve can never give them back",
					Example: "caps drop sys_admin", Man: "capabilities(7), prctl(2)", Complete: completeCaps,
				}),
				securityStep("caps keep", &Command{
					Name: "keep", Usage: "caps keep CAP…", MaxArgs: -1, // none: the step explains why not
					Summary: "keep only these capabilities (at least one), drop every other",
					Kernel:  "the bounding, permitted and effective sets become exactly these",
					Example: "caps keep chown net_bind_service", Man: "capabilities(7), capset(2)", Complete: completeCaps,
				}),
			},
		},
		&Command{
			Name: "nnp", Group: "security", Usage: "nnp [on|off]", NeedsBox: true, Recorded: true,
			Summary: "no_new_privs for the box's next commands: setuid bits and file capabilities stop working",
			Kernel:  "prctl(PR_SET_NO_NEW_PRIVS, 1) in the command's process before execve(2): the flag is inherited and can never be cleared",
			Example: "nnp", Man: "prctl(2), execve(2)",
			Plan: nnpOn.Plan, Run: nnpOn.Run,
			Sub: []*Command{
				nnpOn,
				securityStep("nnp off", &Command{
					Name: "off", Usage: "nnp off", Summary: "the next commands start without no_new_privs again",
					Kernel: "the executor leaves PR_SET_NO_NEW_PRIVS alone; processes that have it keep it", Example: "nnp off", Man: "prctl(2)",
				}),
			},
		},
		&Command{
			Name: "seccomp", Group: "security", Usage: "seccomp docker|deny SYSCALL…|off|show", NeedsBox: true,
			Summary: "a seccomp filter for the box's next commands: Docker's profile, or calls to fail with EPERM",
			Kernel:  "seccomp(SECCOMP_SET_MODE_FILTER, 0, PROG) in the command's process just before execve(2): a BPF program, built by stepbox, that the kernel runs on every system call",
			Example: "seccomp deny mkdir", Man: "seccomp(2)",
			Run: runSeccompShow,
			Sub: []*Command{
				securityStep("seccomp docker", &Command{
					Name: "docker", Usage: "seccomp docker",
					Summary: "moby's default profile, reduced by the box's capabilities as Docker does",
					Kernel:  "about 350 calls allowed, the rest fail with EPERM; rules with includes.caps the box lacks are left out",
					Example: "seccomp docker", Man: "seccomp(2)",
				}),
				securityStep("seccomp deny", &Command{
					Name: "deny", Usage: "seccomp deny SYSCALL…", MinArgs: 1, MaxArgs: -1,
					Summary: "fail these system calls with EPERM, allow every other",
					Kernel:  "a BPF program: check the architecture, compare the call's number with each, return SECCOMP_RET_ERRNO|EPERM on a match",
					Example: "seccomp deny mkdir unshare", Man: "seccomp(2), syscalls(2)",
					Complete: func(sh *Shell, args []string) []Suggestion {
						var out []Suggestion
						for _, n := range primitives.SyscallNames() {
							out = append(out, Suggestion{Text: n, Description: "system call"})
						}
						return out
					},
				}),
				securityStep("seccomp off", &Command{
					Name: "off", Usage: "seccomp off", Summary: "the next commands start without a filter",
					Kernel: "the executor installs none; a process keeps the filters it has", Example: "seccomp off", Man: "seccomp(2)",
				}),
				{
					Name: "show", Usage: "seccomp show", NeedsBox: true,
					Summary: "the program the next commands get: its rules and instruction count",
					Kernel:  "the BPF program as the kernel will run it, from the runtime-spec rules it was built from",
					Example: "seccomp show", Man: "seccomp(2)",
					Run: runSeccompShow,
				},
			},
		},
	)
}

func runCapsShow(sh *Shell, c *Call) error {
	b := sh.Current()
	sec := b.Security()
	how := "they inherit the box process's sets; no caps step yet"
	if sec.CapsSet {
		how = "set by the caps steps"
	}
	sh.say("next command of box %s (%s):", b.Name, how)
	sh.showCapSets(sec.Caps)
	pid, what := b.CommandPID(), "the box's PID 1"
	if b.InitPID() == 0 {
		what = "the box process (no PID 1 yet: `unshare pid` makes one)"
	}
	if len(c.Args) == 1 {
		n, err := strconv.Atoi(c.Args[0])
		if err != nil || n <= 0 {
			return fmt.Errorf("caps show %s: PID is a process ID, a number above 0, as `ps` shows it", step.Cut(c.Args[0]))
		}
		pid, what = n, "PID "+c.Args[0]
	}
	now, err := primitives.CapsOfPID(pid)
	if err != nil {
		return fmt.Errorf("caps show %d: no running process %d to read (`ps` lists the box's): %w", pid, pid, errors.Unwrap(err))
	}
	sh.say("running now, %s (host PID %d, /proc/%d/status):", what, pid, pid)
	sh.showCapSets(now)
	return nil
}

func (sh *Shell) showCapSets(c primitives.CapSets) {
	for _, s := range c.Named() {
		names := primitives.DecodeCaps(s.Mask)
		list := strings.Join(names, " ")
		switch missing := primitives.DecodeCaps(primitives.AllCaps() &^ s.Mask); {
		case len(missing) == 0:
			list = "every capability"
		case len(names) == 0:
			list = "none"
		case len(missing) < len(names):
			list = "every capability but " + strings.Join(missing, " ")
		}
		sh.say("  %s %016x  %2d  %s", s.Key, s.Mask, len(names), list)
	}
}

func runSeccompShow(sh *Shell, c *Call) error {
	b := sh.Current()
	f := b.Security().Seccomp
	if f.Source == "" {
		sh.say("box %s's next commands get no seccomp filter (Seccomp: 0); `seccomp docker` or `seccomp deny SYSCALL…` makes one", b.Name)
		return nil
	}
	sh.say("box %s's next commands get a seccomp filter from %s: %d BPF instructions", b.Name, map[string]string{"docker": "moby's default profile", "deny": "`seccomp deny`"}[f.Source], len(f.Program))
	insts, _ := bpf.Disassemble(f.Program)
	for i, in := range insts[:min(len(insts), 3)] {
		sh.say("  %3d  %v", i, in)
	}
	sh.say("       (the architecture check: a call through another architecture's table gets EPERM)")
	r := f.Rules
	def := string(r.DefaultAction)
	if r.DefaultErrnoRet != nil {
		def += fmt.Sprintf(" (errno %d)", *r.DefaultErrnoRet)
	}
	sh.say("  default: %s", def)
	for _, rule := range r.Syscalls {
		act := string(rule.Action)
		if rule.ErrnoRet != nil {
			act += fmt.Sprintf(" (errno %d)", *rule.ErrnoRet)
		}
		var args []string
		for _, a := range rule.Args {
			args = append(args, fmt.Sprintf("arg%d %s %#x", a.Index, a.Op, a.Value))
		}
		when := ""
		if len(args) > 0 {
			when = " if " + strings.Join(args, " and ")
		}
		sh.say("  %s%s: %s", act, when, strings.Join(rule.Names, " "))
	}
	if f.Unnumbered > 0 {
		sh.say("  (%d names have no number on this architecture and are left out)", f.Unnumbered)
	}
	return nil
}
