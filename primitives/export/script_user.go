package export

import (
	"slices"
	"strings"

	"stepbox/primitives/step"
)

// nsenterFlags are nsenter(1)'s flags for stepbox's namespace names.
var nsenterFlags = map[string]string{
	"uts": "--uts", "ipc": "--ipc", "net": "--net", "pid": "--pid", "mnt": "--mount",
	"cgroup": "--cgroup", "time": "--time",
}

// asUser reports whether the script runs the box's command as the
// image's non-root User. A user namespace the script makes maps only
// root (unshare --map-root-user), so there the command stays root.
func asUser(b Box) bool {
	return (b.UID != 0 || b.GID != 0) && !slices.Contains(b.Namespaces, "user")
}

// holder reports whether the script starts the box's command from the
// host's side, with nsenter, into namespaces a holder shell keeps: the
// way to change ids after pivot_root with standard tools, since
// setpriv(1) and unshare -S are the host's and gone once the overlay is
// the root. chroot(8) changes ids itself, after its chroot.
func holder(b Box) bool {
	return asUser(b) && !b.Chroot
}

// outerAsUser writes the host's side of a holder script: it starts the
// inside stage, which builds the box and then holds it; reads the
// holder's pid from it; runs the command with nsenter as the image's
// User; and kills the holder when the command ends.
func outerAsUser(p func(string, ...any), b Box, unshareFlags string) {
	q := step.ShellQuotePOSIX
	var enter []string
	for _, ns := range b.Namespaces {
		if f, ok := nsenterFlags[ns]; ok {
			enter = append(enter, f)
		}
	}
	keep, _, _ := scriptEnv(b)
	env := make([]string, len(keep))
	for i, e := range keep {
		k, v, _ := strings.Cut(e, "=")
		env[i] = k + "=" + q(v)
	}
	p("  # The image's User is %d:%d. After pivot_root the host's tools that change ids", b.UID, b.GID)
	p("  # (setpriv, unshare -S) are gone, so, as docker exec does, the inside stage builds")
	p("  # the box and holds it, and the host's nsenter runs the command in it: into its")
	p("  # namespaces, its root and working directory (--root, --wd: the holder's), then")
	p("  # setgroups(0) setgid setuid (-G -S); the uid change from 0 empties the permitted,")
	p("  # effective and ambient capability sets, as in the box. The holder is the")
	p("  # box's first process; the command is its child, as `exec` in stepbox runs it.")
	p("  nsenter=$(command -v nsenter) || { echo \"$0: needs util-linux's nsenter\" >&2; exit 1; }")
	p("  [ $# -gt 0 ] || set -- %s", step.ShellJoinPOSIX(b.Args))
	p("  exec 4>&1 5<&0")
	p("  # the inside stage writes the holder's pid (as this host numbers it) on its fd 3, this pipe")
	p("  env -i PATH=%s STEPBOX_SCRIPT_STAGE=inside CG=\"$CG\" BOXDIR=\"$BOXDIR\" \\", hostPath)
	p("    unshare %s --propagation slave sh \"$0\" 3>&1 >&4 4>&- 5<&- | {", unshareFlags)
	p("    read -r pid || exit 1   # the inside stage failed; it said why")
	p("    trap 'kill -TERM \"$pid\" 2>/dev/null' EXIT   # the box ends with its command (or has ended already)")
	p("    trap 'exit 130' INT TERM HUP")
	p("    s=0")
	p("    # env -i: the image's Env, none of this shell's; nsenter finds the command on the image's PATH.")
	p("    # The host's nsenter runs with it, as root, before it enters the box: variables that make")
	p("    # glibc load or read a file (LD_PRELOAD, GCONV_PATH…; those it drops for setuid programs)")
	p("    # are left out, or the image would choose code the host's root runs.")
	p("    %senv -i %s \\", nnp(b), strings.Join(env, " "))
	p("      \"$nsenter\" --target \"$pid\" %s --root --wd --setgid %d --setuid %d -- \"$@\" <&5 >&4 4>&- 5<&- || s=$?", strings.Join(enter, " "), b.GID, b.UID)
	p("    exit $s")
	p("  }")
	p("  exit")
}

// innerHolder ends the inside stage of a holder script: pivot_root into
// the overlay, then, with shell builtins only (nothing of the host's is
// left to run), tell the host's side the holder's pid and wait for it to
// be killed.
func innerHolder(p func(string, ...any), b Box) {
	p("# the holder waits on a fifo no one writes; opened now, while the host's files are here")
	p("rm -f \"$BOXDIR/hold\"")
	p("mkfifo \"$BOXDIR/hold\"")
	p("exec 6<>\"$BOXDIR/hold\"")
	p("# this shell's pid as the host numbers it: /proc is still the host's")
	p("read -r pid _ </proc/self/stat")
	p("cd \"$BOXDIR/merged\"")
	p("# pivot_root: the overlay becomes /, the host's root is detached")
	p("pivot_root . .")
	p("umount -l .")
	p("# the command's working directory: nsenter --wd takes the holder's")
	p("cd %s", step.ShellQuotePOSIX(orRoot(b.Cwd)))
	p("# the box's first process ends on SIGTERM (from the host's side) only with a handler (pid_namespaces(7))")
	p("trap 'exit 0' TERM")
	p("echo \"$pid\" >&3")
	p("exec 3>&-")
	p("read -r _ <&6")
}

// NotCarried names the box's security steps a script cannot carry:
// its capability sets and seccomp filter. (no_new_privs it carries.)
func NotCarried(b Box) []string {
	var steps []string
	if b.CapsSet {
		steps = append(steps, "capability sets (caps)")
	}
	if b.Seccomp != nil {
		steps = append(steps, "seccomp filter")
	}
	return steps
}

// securityNote says which of the box's security steps the script does
// not carry, and why no standard tool can.
func securityNote(p func(string, ...any), b Box) {
	steps := NotCarried(b)
	if len(steps) == 0 {
		return
	}
	p("# NOT carried: the box's %s; `export bundle` carries them to runc.", strings.Join(steps, " and "))
	p("# They belong between pivot_root and exec, where none of the host's tools is left; set")
	p("# before (setpriv(1) around unshare or nsenter), a bounding set without CAP_SYS_ADMIN")
	p("# would stop the mounts and setns(2) that build the box, and a filter would see them.")
}

// nnp is the setpriv(1) prefix that sets no_new_privs, when the box ran
// `nnp`: inherited across fork and execve, it reaches the box's command
// and stops none of the root steps that build the box (none is setuid).
func nnp(b Box) string {
	if b.NoNewPrivs {
		return "setpriv --no-new-privs "
	}
	return ""
}
