package lessons

import (
	"fmt"
	"slices"
	"stepbox/primitives/step"
	"strings"

	"stepbox/primitives"
)

// Checks on namespaces: the inodes of /proc/PID/ns, the hostname inside
// the box, its listening ports, its PID 1, its clocks and its uid map.

func init() {
	register(
		&Check{
			Name: "own-namespace", Usage: "own-namespace TYPE…", MinArgs: 1, MaxArgs: -1,
			Summary: "a box has a namespace of each TYPE that is not the host's",
			Args:    namespaceArgs,
			Findings: map[string]string{
				"shares-host": "The box still shares that namespace with the host: compare `ns`, then `unshare` the missing type.",
			},
			Run: func(s *State, args []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					for _, t := range args {
						if !b.ownNamespace(t) {
							r := b.nsRow(t)
							return fail("shares-host", "box %s: %s %d is the host's (%d)", b.Name, t, b.commandNamespace(t), r.Host)
						}
					}
					return pass("box %s has its own %s", b.Name, strings.Join(args, ", "))
				})
			},
		},
		&Check{
			Name: "hostname", Usage: "hostname", Summary: "a box has its own UTS namespace, with a hostname other than the host's",
			Findings: map[string]string{
				"shares-uts": "The box shares the host's UTS namespace, so its hostname is the host's: `unshare uts` first.",
				"same-name":  "The box has its own UTS namespace, but it still holds the name it copied from the host: `hostname web1`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					switch {
					case !b.ownNamespace("uts"):
						return fail("shares-uts", "box %s: uts is the host's; its name is the host's, %s", b.Name, step.Escape(b.UTS.Box))
					case b.UTS.Box == b.UTS.Host:
						return fail("same-name", "box %s: own uts namespace, still named %s like the host", b.Name, step.Escape(b.UTS.Box))
					}
					// The box set its hostname: a newline in it would
					// print a line of its own under the check's.
					return pass("box %s is called %s; the host is still %s", b.Name, step.Escape(b.UTS.Box), step.Escape(b.UTS.Host))
				})
			},
		},
		&Check{
			Name: "two-hostnames", Usage: "two-hostnames", Summary: "two boxes, each with its own UTS namespace and its own hostname",
			Findings: map[string]string{
				"one-box":    "One box has a name of its own; make a second: `new {db}`, `unshare uts`, `hostname db1`.",
				"shares-uts": "A box shares the host's UTS namespace: `unshare uts` in it before naming it.",
				"same-name":  "Your boxes have their own UTS namespaces but the same name: give each its own with `hostname`.",
			},
			Run: runTwoHostnames,
		},
		&Check{
			Name: "port-80-twice", Usage: "port-80-twice", Summary: "two boxes, each in its own network namespace, each listening on TCP port 80",
			Findings: map[string]string{
				"shares-net":   "A box listening on port 80 shares the host's network namespace: that is the host's own port 80. `rm` the box stepbox names, and `unshare net` in a box before starting a server.",
				"left-on-host": "A box's server was started before `unshare net`, so it still holds the host's port 80: a process keeps the network namespace it started in. Stop it from the host with `!kill` and the PID stepbox saw, then start it again in the box.",
				"no-listener":  "No box listens on port 80 yet: `exec busybox httpd -p 80` starts a web server that goes to the background.",
				"one-listener": "One box listens on port 80. Make a second box with its own network namespace and start a server on port 80 there too.",
			},
			Run: runPort80Twice,
		},
		&Check{
			Name: "pid-one", Usage: "pid-one", Summary: "a box has its own PID namespace, with a PID 1 of its own",
			Findings: map[string]string{
				"no-pid-ns": "The box's processes are numbered in the host's PID namespace: `unshare pid` gives it a PID 1.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					init := b.Namespaces.InitPID
					if init == 0 || !b.ownNamespace("pid") {
						return fail("no-pid-ns", "box %s has no PID namespace of its own", b.Name)
					}
					if n := findProcess(s.Tree, init); n == nil || n.BoxPID() != 1 {
						return fail("no-pid-ns", "box %s: its init, PID %d on the host, is not PID 1 inside", b.Name, init)
					}
					return pass("box %s: PID %d on the host is PID 1 inside", b.Name, init)
				})
			},
		},
		&Check{
			Name: "clock-offset", Usage: "clock-offset", Summary: "a box's commands run in a time namespace of their own whose clocks are shifted",
			Findings: map[string]string{
				"shares-time": "The box's commands read the host's clocks: `unshare time --boottime 24h`.",
				"no-offset":   "The box has a time namespace, but with no offset, so its clocks read like the host's. Offsets can be set only before a process enters it: `rm` the box, make it again and `unshare time --boottime 24h`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					switch {
					case !b.ownNamespace("time"):
						return fail("shares-time", "box %s: time is the host's", b.Name)
					case b.Clocks.Boottime == 0 && b.Clocks.Monotonic == 0:
						return fail("no-offset", "box %s: own time namespace, offsets 0", b.Name)
					}
					return pass("box %s: boottime %s ahead, monotonic %s ahead", b.Name, b.Clocks.Boottime, b.Clocks.Monotonic)
				})
			},
		},
		&Check{
			Name: "user-namespace", Usage: "user-namespace", Summary: "a box runs in a user namespace of its own, with a uid map, and its uts namespace belongs to it",
			Findings: map[string]string{
				"shares-user":     "The box runs in the host's user namespace: `unshare user`, before the namespaces it should own.",
				"uts-not-its-own": "The box's uts namespace came before its user namespace, so the host's user namespace owns it: `unshare user` first, then `unshare uts`, in a new box.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if !b.ownNamespace("user") || len(b.UIDMap) == 0 {
						return fail("shares-user", "box %s: user is the host's", b.Name)
					}
					// The ownership the step teaches: a namespace made after
					// the user namespace belongs to it (NS_GET_USERNS).
					if uts := b.nsRow("uts"); !b.ownNamespace("uts") || uts.Owner == 0 || uts.Owner != b.commandNamespace("user") {
						return fail("uts-not-its-own", "box %s: its uts namespace is not its own user namespace's", b.Name)
					}
					m := b.UIDMap[0]
					return pass("box %s: uid %d inside is uid %d on the host (%s mapped); its uts namespace belongs to its user namespace", b.Name, m.Inside, m.Outside, step.Count(int(m.Count), "id"))
				})
			},
		},
		&Check{
			Name: "docker-namespaces", Usage: "docker-namespaces", Summary: "a box has the five namespaces Docker gave the article's container: ipc, mnt, net, pid, uts",
			Findings: map[string]string{
				"missing": "The box still shares some of Docker's five namespaces with the host (see what the check saw): `unshare` them.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					var missing []string
					for _, t := range dockerNamespaces {
						if !b.ownNamespace(t) {
							missing = append(missing, t)
						}
					}
					if len(missing) > 0 {
						return fail("missing", "box %s still shares %s with the host", b.Name, strings.Join(missing, ", "))
					}
					return pass("box %s has its own ipc, mnt, net, pid and uts, as Docker's container did", b.Name)
				})
			},
		},
		&Check{
			Name: "container-process", Usage: "container-process", Summary: "a box runs a process of its own besides its box process and PID 1",
			Findings: map[string]string{
				"none-running": "Nothing runs in the box besides stepbox's own processes: start something that stays, e.g. `exec sh -c 'sleep 3600 >/dev/null 2>&1 &'`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					procs := containerProcesses(s.Tree, b.Name)
					if len(procs) == 0 {
						return fail("none-running", "box %s runs no process of its own", b.Name)
					}
					p := procs[0]
					return pass("box %s runs %s: PID %d inside, %d on the host", b.Name, p.Comm, p.BoxPID(), p.PID)
				})
			},
		},
	)
}

// dockerNamespaces are the namespaces Docker made in the article.
var dockerNamespaces = []string{"ipc", "mnt", "net", "pid", "uts"}

func namespaceArgs(args []string) error {
	for _, a := range args {
		if _, err := primitives.LookupNamespace(a); err != nil {
			return err
		}
	}
	return nil
}

func runTwoHostnames(s *State, _ []string) Result {
	if r := s.noBox(); r != nil {
		return *r
	}
	names := map[string]string{} // hostname → box
	for _, b := range s.live() {
		if !b.ownNamespace("uts") {
			continue
		}
		if b.UTS.Box == b.UTS.Host {
			continue
		}
		if other, ok := names[b.UTS.Box]; ok {
			return fail("same-name", "boxes %s and %s are both called %s", other, b.Name, step.Escape(b.UTS.Box))
		}
		names[b.UTS.Box] = b.Name
	}
	switch len(names) {
	case 0:
		if r := judgeBoxes(s, func(b *BoxState) Result {
			if !b.ownNamespace("uts") {
				return fail("shares-uts", "box %s: uts is the host's", b.Name)
			}
			return fail("same-name", "box %s: still named %s like the host", b.Name, step.Escape(b.UTS.Box))
		}); !r.Pass {
			return r
		}
	case 1:
		for host, box := range names {
			return fail("one-box", "only box %s has a name of its own (%s)", box, step.Escape(host))
		}
	}
	var parts []string
	for host, box := range names {
		parts = append(parts, fmt.Sprintf("%s is %s", box, step.Escape(host)))
	}
	slices.Sort(parts)
	return pass("one kernel, %d names: %s", len(names), strings.Join(parts, ", "))
}

func runPort80Twice(s *State, _ []string) Result {
	if r := s.noBox(); r != nil {
		return *r
	}
	// The host's port 80 stays free: no box's server may hold it.
	if r := hostPort80(s); r != nil {
		return *r
	}
	seen := map[uint32]string{} // network namespace → box
	for _, b := range s.live() {
		if !b.ownNamespace("net") || !b.listensOn(80) {
			continue
		}
		ns := b.commandNamespace("net")
		if _, dup := seen[ns]; !dup {
			seen[ns] = b.Name
		}
	}
	var boxes []string
	for _, name := range seen {
		boxes = append(boxes, name)
	}
	slices.Sort(boxes)
	switch len(boxes) {
	case 0:
		return fail("no-listener", "no box listens on TCP port 80 in a network namespace of its own")
	case 1:
		return fail("one-listener", "only box %s listens on port 80", boxes[0])
	}
	return pass("boxes %s each listen on port 80, each in its own network namespace; the host's port 80 is free of them", strings.Join(boxes, " and "))
}

// hostPort80 finds a box's process listening on TCP port 80 in the host's
// network namespace, and names the box it belongs to: not always the box
// that sees the port, since a server started before `unshare net` stays in
// the host's namespace. A socket no box holds is the host's own.
func hostPort80(s *State) *Result {
	ls := slices.Clone(s.HostListeners)
	for _, b := range s.live() {
		if !b.ownNamespace("net") {
			ls = append(ls, b.Listeners...)
		}
	}
	for _, l := range ls {
		if l.Port != 80 {
			continue
		}
		b, p := s.socketHolder(l.Inode)
		switch {
		case b == nil:
			continue
		case !b.ownNamespace("net"):
			return &Result{Finding: "shares-net", Box: b.Name,
				Saw: fmt.Sprintf("box %s shares the host's network namespace, and its %s (PID %d) listens on the host's port 80", b.Name, p.Command, p.PID)}
		}
		return &Result{Finding: "left-on-host", Box: b.Name,
			Saw: fmt.Sprintf("box %s's %s (PID %d) holds the host's port 80: it was started before `unshare net`", b.Name, p.Command, p.PID)}
	}
	return nil
}
