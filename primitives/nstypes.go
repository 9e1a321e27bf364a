package primitives

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// NamespaceType describes one of the eight Linux namespace types.
type NamespaceType struct {
	Name    string  // stepbox's word: uts ipc net pid mnt cgroup time user
	Proc    string  // its entry in /proc/PID/ns
	Flag    uintptr // CLONE_NEW*
	Option  string  // unshare(1)/nsenter(1) long option
	Short   string  // nsenter(1) short option
	Isolate string  // what it gives a box its own copy of
	Man     string  // its man page
}

// NamespaceTypes lists the namespace types in the order `unshare all`
// applies them: user first (it must own the rest), pid last (it starts the
// box's PID 1, which inherits everything before it).
var NamespaceTypes = []NamespaceType{
	{"user", "user", unix.CLONE_NEWUSER, "--user", "-U", "user and group IDs, and capabilities", "user_namespaces(7)"},
	{"uts", "uts", unix.CLONE_NEWUTS, "--uts", "-u", "hostname and NIS domain name", "uts_namespaces(7)"},
	{"ipc", "ipc", unix.CLONE_NEWIPC, "--ipc", "-i", "System V IPC objects and POSIX message queues", "ipc_namespaces(7)"},
	{"net", "net", unix.CLONE_NEWNET, "--net", "-n", "network devices, addresses, routes, ports and firewall", "network_namespaces(7)"},
	{"mnt", "mnt", unix.CLONE_NEWNS, "--mount", "-m", "the mount table", "mount_namespaces(7)"},
	{"cgroup", "cgroup", unix.CLONE_NEWCGROUP, "--cgroup", "-C", "the view of the cgroup hierarchy (its root)", "cgroup_namespaces(7)"},
	{"time", "time", unix.CLONE_NEWTIME, "--time", "-T", "the boot-time and monotonic clocks (offsets)", "time_namespaces(7)"},
	{"pid", "pid", unix.CLONE_NEWPID, "--pid", "-p", "process IDs (a PID 1 of its own)", "pid_namespaces(7)"},
}

// NamespaceTypeNames is the list of valid `unshare` arguments, in order.
func NamespaceTypeNames() []string {
	names := make([]string, len(NamespaceTypes))
	for i, t := range NamespaceTypes {
		names[i] = t.Name
	}
	return names
}

// LookupNamespace finds a namespace type by stepbox's word, its /proc name
// or its unshare(1) option ("mount" and "mnt" both work).
func LookupNamespace(name string) (NamespaceType, error) {
	n := strings.TrimPrefix(strings.ToLower(name), "--")
	for _, t := range NamespaceTypes {
		if n == t.Name || n == t.Proc || n == strings.TrimPrefix(t.Option, "--") {
			return t, nil
		}
	}
	return NamespaceType{}, fmt.Errorf("unknown namespace type %q: use one of %s, or all", name, strings.Join(NamespaceTypeNames(), " "))
}

// SortNamespaces puts types into the order NamespaceTypes gives.
func SortNamespaces(types []NamespaceType) []NamespaceType {
	var out []NamespaceType
	for _, t := range NamespaceTypes {
		for _, u := range types {
			if u.Name == t.Name {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
