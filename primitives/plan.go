package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// Plans: `explain CMD` shows the record a step would write — the same
// calls, shell lines, man pages and undo as the primitive records when it
// runs — with every result "?" (step.NotRun). A plan reads the box's
// state to fill in paths and PIDs; it changes nothing. The tests check
// each plan against the record of the step run for real.

// PlanNew is the record `new NAME [--user]` will write.
func (s *Session) PlanNew(name string, user bool) (*step.Step, error) {
	if err := ValidBoxName(name); err != nil {
		return nil, err
	}
	if _, err := s.Box(name); err == nil {
		return nil, fmt.Errorf("a box called %q exists already: pick another name, or `rm %s` first", name, name)
	}
	st := &step.Step{
		Command: "new " + name,
		Summary: "will start the box process: stepbox's executor, one thread of C, that will apply each step",
		Man:     []string{"clone(2)", "execve(2)"},
		Undo:    "`rm " + name + "` kills the box's processes; its namespaces die with them",
	}
	user = user || Rootless()
	var sub subordinateMap
	mapped := false
	if user && !userNSAfterExec() {
		sub, mapped, _ = rootlessSubordinate()
	}
	if user {
		st.Command += " --user"
		uid, gid := os.Getuid(), os.Getgid()
		st.Man = append(st.Man, "user_namespaces(7)")
		if mapped {
			st.Shell = append(st.Shell, "unshare --user --map-root-user --map-auto sh")
			st.Notes = append(st.Notes, fmt.Sprintf("uid 0 in the box will be uid %d on the host, uids 1-%d your range from %d (uid_map %q)", uid, sub.uid.Count, sub.uid.Outside, sub.lines(uid, sub.uid)))
		} else if !userNSAfterExec() {
			st.Shell = append(st.Shell, "unshare --user --map-root-user sh")
			st.Notes = append(st.Notes, fmt.Sprintf("uid 0 in the box will be uid %d on the host (uid_map \"0 %d 1\"), gid 0 gid %d", uid, uid, gid))
		}
	} else {
		st.Shell = append(st.Shell, newBoxShell)
	}
	flags := "SIGCHLD"
	if user && !userNSAfterExec() {
		flags = "CLONE_NEWUSER|SIGCHLD"
	}
	st.Plan(fmt.Sprintf("clone(child_stack=NULL, flags=%s)", flags))
	st.Plan(boxExecve(name))
	if mapped {
		for _, c := range subordinateCalls(sub, "PID") {
			st.Plan(c.call)
		}
		st.Plan(boxExecve(name) + " again, now uid 0 of its user namespace")
	}
	if user && userNSAfterExec() {
		st.Plan("unshare(CLONE_NEWUSER)")
		if err := mapUser(nil, nil, "/proc/PID", st, true); err != nil {
			return nil, fmt.Errorf("new %s --user: %w", name, err)
		}
	}
	st.Notes = append(st.Notes, fmt.Sprintf("stepbox will keep the box's processes in %s%s, a cgroup of its own, before the box runs anything: teardown ends everything in it; the box's own cgroup comes with `cgroup new`",
		name, cgroups.TrackSuffix))
	return st, nil
}

// newBoxShell is `new NAME` with standard tools: any new process starts in
// every namespace of its parent.
const newBoxShell = "sh   # a new process: it shares every namespace with the host until unshare"

// PlanUnshare is the record `unshare TYPE…` will write for the box: the
// step's own code (unshareOne), with nothing run.
func (b *Box) PlanUnshare(types []NamespaceType, opts UnshareOptions) (*step.Step, error) {
	types = SortNamespaces(types)
	if len(types) == 0 {
		return nil, fmt.Errorf("unshare: nothing to do")
	}
	var names []string
	for _, t := range types {
		names = append(names, t.Name)
	}
	st := &step.Step{Command: "unshare " + strings.Join(names, " ")}
	for _, t := range types {
		st.Man = append(st.Man, t.Man)
		if err := b.unshareOne(nil, st, t, opts, true); err != nil {
			return nil, err
		}
	}
	st.Summary = "will move the box process into new namespaces: " + strings.Join(names, ", ")
	st.Undo = unshareUndo
	st.Man = append(st.Man, "unshare(2)", "namespaces(7)")
	return st, nil
}

// PlanSethostname is the record `hostname NAME` will write.
func (b *Box) PlanSethostname(name string) (*step.Step, error) {
	if err := validHostname(name); err != nil {
		return nil, err
	}
	st, call := hostnameStep(name, "will set")
	st.Plan(call)
	if !b.Has("uts") {
		st.Notes = append(st.Notes, "the box shares the host's UTS namespace: stepbox refuses this until `unshare uts`, since it would rename the host")
	}
	return st, nil
}

// PlanExec is the record of `exec CMD…`: the process that applies the
// box's steps forks the command, which inherits every namespace, the
// root and the cgroup the steps gave it, and execs it.
func (b *Box) PlanExec(argv []string) (*step.Step, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec: name a command to run inside the box")
	}
	pid := b.CommandPID()
	from := fmt.Sprintf("the box process (host PID %d)", pid)
	if b.InitPID() != 0 {
		from = fmt.Sprintf("the box's PID 1 (host PID %d)", pid)
	}
	st := &step.Step{
		Command: "exec " + step.ShellJoin(argv),
		Shell:   []string{fmt.Sprintf("nsenter --target %d --all --root --wd %s", pid, step.ShellJoin(argv))},
		Man:     []string{"clone(2)", "execve(2)", "nsenter(1)"},
		Undo:    "nothing to undo: the process ends with the command; what it wrote stays in the box (in its upper dir after `mount overlay`)",
	}
	made := "every namespace, the root and the cgroup the steps made"
	if b.Cgroup() == nil {
		// No cgroup of the box's own (none yet, or rootless where none is
		// delegated): the command stays in the session's (ut26 F19).
		made = "every namespace and the root the steps made, and the session's cgroup (the box has none of its own)"
	}
	st.Tell("ran "+argv[0]+" inside the box: "+from+" forked it, and it inherited "+made,
		"will run "+argv[0]+" inside the box: "+from+" will fork it, and it will inherit "+made)
	st.MarkNotRun()
	st.Plan("clone(child_stack=NULL, flags=SIGCHLD)   # fork, in " + from)
	st.Plan(setsidCall)
	st.Plan("dup3(FD, 0, 0); dup3(FD, 1, 0); dup3(FD, 2, 0)   # pipes the session prints from, and /dev/null: never your terminal")
	for _, c := range securityCalls(b.spawnSettings()) {
		st.Plan(c.call)
	}
	st.Plan(fmt.Sprintf("execve(%s, %s, …)", step.Quote(b.planLookPath(argv[0])), quoteArgv(argv)))
	st.Plan("wait4(-1, …, WNOHANG, NULL)   # the box reaps it and reports its exit status")
	if b.Cgroup() != nil {
		st.Notes = append(st.Notes, "nsenter does not change cgroup; stepbox's command starts in the box's cgroup because its parent is there")
	}
	return st, nil
}

// planLookPath finds name in the box's PATH as the box sees its files,
// through /proc/PID/root; as given when it cannot tell.
func (b *Box) planLookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	root := b.HostRoot()
	for _, dir := range filepath.SplitList("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		if st, err := inroot.Stat(root, filepath.Join(dir, name)); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return filepath.Join(dir, name)
		}
	}
	return name
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = step.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// PlanEnter is the record `enter TYPE… -- CMD…` will write.
func (b *Box) PlanEnter(types []NamespaceType, argv []string) (*step.Step, error) {
	pid := b.CommandPID()
	types = enterOrder(pid, b.withUserNamespace(types))
	j := b.enterJoinOf(pid, types)
	path, err := enterPath(pid, types, argv[0], j.env)
	if err != nil {
		path = argv[0]
	}
	st, _ := enterRecord(pid, types, j, path, argv, "will join")
	return st, nil
}
