package primitives

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// The rootless checks: what a normal user needs to build boxes without
// sudo (issue 19): user namespaces they may make, subordinate ID ranges
// and the setuid helpers that map them, overlay inside a user namespace,
// and cgroups their user manager delegates. Each names the learner.

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func (h DoctorHost) checkUserNamespaces() Check {
	n, _ := h.read("/proc/sys/user/max_user_namespaces")
	if n == "" || n == "0" {
		return Check{Name: "user namespaces", Found: "disabled (user.max_user_namespaces = " + n + ")", OK: false,
			Advice: "`new --user` and `unshare user` need them: sudo sysctl -w user.max_user_namespaces=15000"}
	}
	return Check{Name: "user namespaces", Found: "user.max_user_namespaces = " + n, OK: true}
}

// checkRootlessUserNamespaces: may a normal user make a user namespace?
// Debian's kernels before 6.x had kernel.unprivileged_userns_clone;
// Ubuntu 23.10 and later let AppArmor refuse them
// (kernel.apparmor_restrict_unprivileged_userns).
func (h DoctorHost) checkRootlessUserNamespaces() Check {
	const name = "rootless: userns"
	if v, ok := h.read("/proc/sys/kernel/unprivileged_userns_clone"); ok && v == "0" {
		return Check{Name: name, Found: "refused to normal users (kernel.unprivileged_userns_clone = 0)", OK: false,
			Advice: "sudo sysctl -w kernel.unprivileged_userns_clone=1 (until reboot; a line in /etc/sysctl.d/ keeps it)"}
	}
	if v, ok := h.read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
		return Check{Name: name, Found: "AppArmor refuses them to normal users (kernel.apparmor_restrict_unprivileged_userns = 1, as Ubuntu sets it); sudo stepbox is not affected", OK: false,
			Advice: "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (until reboot; a line in /etc/sysctl.d/ keeps it)"}
	}
	if n, _ := h.read("/proc/sys/user/max_user_namespaces"); n == "" || n == "0" {
		return Check{Name: name, Found: "disabled for everyone (user.max_user_namespaces = 0)", OK: false,
			Advice: "sudo sysctl -w user.max_user_namespaces=15000"}
	}
	return Check{Name: name, Found: "a normal user may make user namespaces", OK: true}
}

// oneIDBox is what works while a rootless box can map only its root.
const oneIDBox = "the boxes work, each mapping one ID (its root is you): only giving files to other IDs inside (chown, apt) fails"

// checkSubordinateIDs: the ranges /etc/subuid and /etc/subgid grant the
// learner (subuid(5)). Without them a rootless box maps one ID, its root,
// and `exec chown`, apt and friends fail inside.
func (h DoctorHost) checkSubordinateIDs() Check {
	const name = "rootless: subuid"
	if h.UID == 0 {
		return Check{Name: name, Found: "running as root without sudo: boxes map root's range (or stepbox's default); ranges matter for a normal user", OK: true}
	}
	var found []string
	var missing []string
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		r, ok, err := subordinateRange(h.path(file), h.User, h.UID)
		switch {
		case err != nil:
			return Check{Name: name, Found: err.Error(), OK: false, Advice: "fix that line (NAME:START:COUNT), or remove it and run the command below"}
		case !ok:
			missing = append(missing, file)
		case r.Count < 65536:
			found = append(found, fmt.Sprintf("%s: %d IDs from %d", file, r.Count, r.Outside))
			missing = append(missing, file)
		default:
			found = append(found, fmt.Sprintf("%s: %d IDs from %d", file, r.Count, r.Outside))
		}
	}
	if len(missing) == 0 {
		return Check{Name: name, Found: h.User + " has " + strings.Join(found, ", "), OK: true}
	}
	start := max(h.nextFreeSubordinate("/etc/subuid"), h.nextFreeSubordinate("/etc/subgid"))
	return Check{Name: name, Found: fmt.Sprintf("%s has no range of 65536 IDs in %s: a rootless box can map only its root", h.User, strings.Join(missing, " and ")), OK: false,
		Advice:    fmt.Sprintf("sudo usermod --add-subuids %d-%d --add-subgids %d-%d %s", start, start+65535, start, start+65535, h.User),
		Meanwhile: oneIDBox}
}

// nextFreeSubordinate is the first ID above every range file grants, at
// least 100000 (where useradd starts), rounded up to a multiple of 65536.
func (h DoctorHost) nextFreeSubordinate(file string) int {
	next := 100000
	f, err := os.Open(h.path(file))
	if err != nil {
		return next
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 == nil && err2 == nil && start+count > next {
			next = (start + count + 65535) / 65536 * 65536
		}
	}
	return next
}

// checkIDMapTools: newuidmap and newgidmap (shadow's setuid helpers) write
// a map of subordinate ranges, which an unprivileged process may not.
func (h DoctorHost) checkIDMapTools() Check {
	const name = "rootless: uidmap"
	var missing []string
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if !h.exists("/usr/bin/"+tool) && !h.exists("/bin/"+tool) {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return Check{Name: name, Found: "newuidmap and newgidmap installed", OK: true}
	}
	return Check{Name: name, Found: "no " + strings.Join(missing, ", ") + ": a rootless box maps one ID, not a range", OK: false,
		Advice: installAdvice(h, "uidmap", "shadow-utils"), Meanwhile: oneIDBox}
}

// checkRootlessOverlay: overlayfs may be mounted inside a user namespace
// since Linux 5.11 (commit 459c7c565ac3), with userxattr.
func (h DoctorHost) checkRootlessOverlay() Check {
	const name = "rootless: overlay"
	if !ReleaseAtLeast(h.Release, "5.11") {
		return Check{Name: name, Found: "Linux " + h.Release + " refuses overlay mounts inside a user namespace", OK: false,
			Advice: newerKernel("5.11", "overlay in a user namespace")}
	}
	return Check{Name: name, Found: "overlay mounts inside a user namespace (Linux 5.11 or newer, userxattr)", OK: true}
}

// installAdvice is the command that installs a package on this host:
// debian names Debian's and Ubuntu's package, fedora Fedora's.
func installAdvice(h DoctorHost, debian, fedora string) string {
	id := h.osRelease()
	switch {
	case strings.Contains(id, "debian") || strings.Contains(id, "ubuntu"):
		return "sudo apt install " + debian
	case strings.Contains(id, "fedora") || strings.Contains(id, "rhel"):
		return "sudo dnf install " + fedora
	}
	return fmt.Sprintf("install %s (Debian and Ubuntu) or %s (Fedora) with your package manager", debian, fedora)
}

// osRelease is the host's ID and ID_LIKE from os-release(5), lower case.
func (h DoctorHost) osRelease() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := os.ReadFile(h.path(p))
		if err != nil {
			continue
		}
		var ids []string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if ok && (k == "ID" || k == "ID_LIKE") {
				ids = append(ids, strings.ToLower(strings.Trim(v, `"'`)))
			}
		}
		return strings.Join(ids, " ")
	}
	return ""
}
