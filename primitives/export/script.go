package export

import (
	"fmt"
	"slices"
	"strings"

	"stepbox/primitives/step"
)

// unshareFlags are unshare(1)'s flags for stepbox's namespace names.
var unshareFlags = map[string]string{
	"uts": "--uts", "ipc": "--ipc", "net": "--net", "pid": "--pid --fork", "mnt": "--mount",
	"cgroup": "--cgroup", "time": "--time", "user": "--user --map-root-user",
}

// devNodes are what `mount dev` makes in a /dev tmpfs (mknod(1) arguments).
var devNodes = []string{"null c 1 3", "zero c 1 5", "full c 1 7", "random c 1 8", "urandom c 1 9", "tty c 5 0"}

// Script is a POSIX sh script that rebuilds box b with standard tools
// (util-linux's unshare, mount, pivot_root; cgroup files written with
// echo): the same namespaces, hostname, overlay of the same layer
// directories, mounts and cgroup limits, then the image's command (or
// the script's own arguments) in it. The overlay's upper dir starts
// empty: what the box's commands wrote is in `export bundle`'s copy.
func Script(b Box) string {
	q := step.ShellQuotePOSIX
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Box %s, as stepbox built it, rebuilt with standard tools (util-linux, coreutils).", commentSafe(b.Name))
	p("# Run as root: sh %s [CMD…]  (CMD replaces the image's command). Needs Linux >= 5.11.", "THIS-FILE")
	if len(b.Layers) > 0 {
		p("# The overlay's lower dirs are stepbox's unpacked layers in its state dir (below):")
		p("# this script rebuilds the box only on this host, while that state dir holds them.")
	}
	securityNote(p, b)
	envNote(p, b)
	p("set -eu")
	p("CG=${CG:-%s}", q("stepbox-script-"+b.Name))
	p("")
	p("if [ \"${STEPBOX_SCRIPT_STAGE:-}\" != inside ]; then")
	boxDir(p, b)
	if b.Memory > 0 || b.Pids > 0 || b.CPUQuota > 0 {
		p("  # cgroup new · cgroup limit · cgroup attach: this shell joins the cgroup, and the box")
		p("  # inherits it. Remove it afterwards with: rmdir the directories named below.")
		p("  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then   # cgroup v2")
		var v2, v1, ctls []string
		if b.Pids > 0 {
			ctls = append(ctls, "pids")
			v2 = append(v2, fmt.Sprintf("echo %d > /sys/fs/cgroup/$CG/pids.max", b.Pids))
			v1 = append(v1, "mkdir -p /sys/fs/cgroup/pids/$CG", fmt.Sprintf("echo %d > /sys/fs/cgroup/pids/$CG/pids.max", b.Pids), "echo $$ > /sys/fs/cgroup/pids/$CG/cgroup.procs")
		}
		if b.Memory > 0 {
			ctls = append(ctls, "memory")
			v2 = append(v2, fmt.Sprintf("echo %d > /sys/fs/cgroup/$CG/memory.max", b.Memory))
			v1 = append(v1, "mkdir -p /sys/fs/cgroup/memory/$CG", fmt.Sprintf("echo %d > /sys/fs/cgroup/memory/$CG/memory.limit_in_bytes", b.Memory), "echo $$ > /sys/fs/cgroup/memory/$CG/cgroup.procs")
		}
		if b.CPUQuota > 0 {
			ctls = append(ctls, "cpu")
			v2 = append(v2, fmt.Sprintf("echo '%d %d' > /sys/fs/cgroup/$CG/cpu.max", b.CPUQuota, b.CPUPeriod))
			v1 = append(v1, "mkdir -p /sys/fs/cgroup/cpu/$CG", fmt.Sprintf("echo %d > /sys/fs/cgroup/cpu/$CG/cpu.cfs_period_us", b.CPUPeriod),
				fmt.Sprintf("echo %d > /sys/fs/cgroup/cpu/$CG/cpu.cfs_quota_us", b.CPUQuota), "echo $$ > /sys/fs/cgroup/cpu/$CG/cgroup.procs")
		}
		p("    # a controller's files appear in a child once the parent enables it (cgroup.subtree_control)")
		p("    for c in %s; do", strings.Join(ctls, " "))
		p("      grep -qw $c /sys/fs/cgroup/cgroup.subtree_control || echo +$c > /sys/fs/cgroup/cgroup.subtree_control")
		p("    done")
		p("    mkdir -p /sys/fs/cgroup/$CG")
		for _, l := range v2 {
			p("    %s", l)
		}
		p("    echo $$ > /sys/fs/cgroup/$CG/cgroup.procs")
		p("  else                                                 # cgroup v1: one hierarchy per controller")
		for _, l := range v1 {
			p("    %s", l)
		}
		p("  fi")
	}
	var flags []string
	for _, ns := range b.Namespaces {
		if f, ok := unshareFlags[ns]; ok {
			flags = append(flags, f)
		}
	}
	hold := holder(b)
	p("  # unshare %s: new namespaces; this script goes on inside them%s", strings.Join(b.Namespaces, " "), pidNote(b.Namespaces))
	if hold {
		outerAsUser(p, b, strings.Join(flags, " "))
	} else {
		p("  # env -i: the box's command gets the image's environment, none of this shell's")
		p("  s=0")
		p("  env -i PATH=%s STEPBOX_SCRIPT_STAGE=inside CG=\"$CG\" BOXDIR=\"$BOXDIR\" \\", hostPath)
		p("    %sunshare %s --propagation slave sh \"$0\" \"$@\" || s=$?", nnp(b), strings.Join(flags, " "))
		p("  exit $s")
	}
	p("fi")
	p("")
	if b.Hostname != "" {
		p("hostname %s", q(b.Hostname))
	}
	p("# mount overlay: the layers bottom to top (lowerdir lists the top first), a fresh upper dir")
	lower := make([]string, len(b.Layers))
	for i, l := range b.Layers {
		lower[len(b.Layers)-1-i] = l
	}
	p("mkdir -p \"$BOXDIR/upper\" \"$BOXDIR/work\" \"$BOXDIR/merged\"")
	p("mount -t overlay overlay -o %s,upperdir=\"$BOXDIR/upper\",workdir=\"$BOXDIR/work\" \"$BOXDIR/merged\"", q("lowerdir="+strings.Join(lower, ":")))
	if len(b.Mounts)+len(b.MaskedPaths)+len(b.ReadonlyPaths) > 0 {
		inBox(p)
	}
	for _, m := range b.Mounts {
		p("inbox %s", q(m.Target))
		opts := ""
		if len(m.Options) > 0 {
			opts = " -o " + q(strings.Join(m.Options, ","))
		}
		if m.Type == "bind" {
			// A volume: the host's directory or file, bound in.
			p("[ -d %s ] && mkdir -p \"$BOXDIR/merged\"%s || touch \"$BOXDIR/merged\"%s", q(m.Source), q(m.Target), q(m.Target))
			p("mount --rbind %s \"$BOXDIR/merged\"%s", q(m.Source), q(m.Target))
			if slices.Contains(m.Options, "ro") {
				p("mount -o remount,bind,ro \"$BOXDIR/merged\"%s", q(m.Target))
			}
			continue
		}
		p("mkdir -p \"$BOXDIR/merged\"%s", q(m.Target))
		p("mount -t %s%s %s \"$BOXDIR/merged\"%s", q(m.Type), opts, q(m.Source), q(m.Target))
		if m.Target == "/dev" && m.Type == "tmpfs" {
			// The nodes go in the tmpfs just mounted: empty, no symlink in it.
			for _, d := range devNodes {
				f := strings.Fields(d)
				p("mknod -m 666 \"$BOXDIR/merged/dev/%s\" %s %s %s", f[0], f[1], f[2], f[3])
			}
		}
	}
	if len(b.MaskedPaths)+len(b.ReadonlyPaths) > 0 {
		p("# mount mask: Docker's masked paths (/dev/null over a file, an empty read-only tmpfs over a directory), then its read-only ones")
		for _, m := range b.MaskedPaths {
			t := "\"$BOXDIR/merged\"" + q(m)
			p("inbox %s", q(m))
			p("if [ -d %s ]; then mount -t tmpfs -o ro tmpfs %s; elif [ -e %s ]; then mount --bind /dev/null %s; fi", t, t, t, t)
		}
		for _, r := range b.ReadonlyPaths {
			t := "\"$BOXDIR/merged\"" + q(r)
			p("inbox %s", q(r))
			p("if [ -e %s ]; then mount --bind %s %s && mount -o remount,bind,ro %s; fi", t, t, t, t)
		}
	}
	if hold {
		innerHolder(p, b)
		return w.String()
	}
	if (b.UID != 0 || b.GID != 0) && !asUser(b) {
		p("# the image runs as %d:%d, but the user namespace this script makes maps only root (unshare --map-root-user): this runs as root", b.UID, b.GID)
	}
	p("[ $# -gt 0 ] || set -- %s", step.ShellJoinPOSIX(b.Args))
	p("cd \"$BOXDIR/merged\"")
	p("unset STEPBOX_SCRIPT_STAGE CG BOXDIR")
	keep, _, _ := scriptEnv(b)
	if b.Chroot {
		p("# chroot: the weaker way; the command runs with the overlay as its root directory.")
		p("# The host's chroot runs with this shell's environment; the image's Env (as runc's")
		p("# config.json has it) reaches only the box's sh, which exports it for the command.")
		user := ""
		if asUser(b) {
			p("# as the image's User, %d:%d: chroot(8) changes ids after its chroot, --groups='' clears the supplementary groups", b.UID, b.GID)
			user = fmt.Sprintf("--userspec=%d:%d --groups='' ", b.UID, b.GID)
		}
		p("exec chroot %s. /bin/sh -c 'cd \"$1\" && shift && while [ \"$1\" != -- ]; do export \"$1\"; shift; done && shift && exec \"$@\"' sh %s %s -- \"$@\"",
			user, q(orRoot(b.Cwd)), step.ShellJoinPOSIX(keep))
		return w.String()
	}
	p("# pivot_root: the overlay becomes /, the host's root is detached")
	p("pivot_root . .")
	p("umount -l .")
	p("cd %s", q(orRoot(b.Cwd)))
	p("# the environment the box's command gets: the image's Env, as runc's config.json has it,")
	p("# set once no host tool is left to run (this shell's exec runs the box's own command)")
	for _, e := range keep {
		k, v, _ := strings.Cut(e, "=")
		p("export %s=%s", k, q(v))
	}
	p("exec \"$@\"")
	return w.String()
}

// boxDir writes the script's choice of $BOXDIR, where the overlay's
// upper, work and merged dirs go: root runs the script, so a directory
// another user could make or enter first would let them put files
// under the box's root (their /bin/sh run by root). By default a new
// one from mktemp -d (mode 0700, a name no one guesses), removed when
// the box ends (--one-file-system: not what is still mounted in it);
// a BOXDIR the learner gives is made (mode 0700) if it is not there,
// must be a directory of theirs that no one else can write, and is kept.
func boxDir(p func(string, ...any), b Box) {
	p("  # BOXDIR: the overlay's upper, work and merged dirs, in a directory no other user can write or enter first")
	p("  if [ -n \"${BOXDIR:-}\" ]; then")
	p("    [ -e \"$BOXDIR\" ] || [ -L \"$BOXDIR\" ] || mkdir -m 700 -- \"$BOXDIR\"")
	p("    if [ -L \"$BOXDIR\" ] || [ ! -d \"$BOXDIR\" ] || [ \"$(stat -c %%u -- \"$BOXDIR\")\" != \"$(id -u)\" ] ||")
	p("       [ $((0$(stat -c %%a -- \"$BOXDIR\") & 022)) -ne 0 ]; then")
	p("      echo \"$0: BOXDIR=$BOXDIR: give a directory of yours that no other user can write (mkdir -m 700 DIR), or no BOXDIR: the script makes one with mktemp -d\" >&2")
	p("      exit 1")
	p("    fi")
	p("  else")
	p("    BOXDIR=$(mktemp -d \"${TMPDIR:-/tmp}\"/%s)", step.ShellQuotePOSIX("stepbox-script-"+b.Name+".XXXXXXXX"))
	p("    trap 'rm -rf --one-file-system \"$BOXDIR\"' EXIT")
	p("    trap 'exit 130' INT TERM HUP")
	p("  fi")
}

// inBox writes the script's inbox function, run before each mkdir,
// touch, mknod and mount on "$BOXDIR/merged"PATH: it refuses PATH if a
// component of it, in the root as the script has built it so far, is a
// symlink (or . or ..). The host's tools run those commands before
// pivot_root, on the host's side, with a fresh upper dir: an image's
// symlink (d -> /etc) is followed from the host's own / (mkdir -p
// merged/d/sub makes /etc/sub), whatever the box did to it in stepbox.
// They cannot run after pivot_root instead: a host binary run there
// loads the image's ld.so and libraries, as root, with the host's root
// still attached. Nothing else runs in the tree meanwhile (the upper
// dir is under $BOXDIR, root's own), so a check then a use is not a race.
func inBox(p func(string, ...any)) {
	p("# inbox PATH: stop if PATH in the box's root crosses a symlink. Each mkdir, mount and mknod")
	p("# below runs on the host's side (after pivot_root none of the host's tools is left),")
	p("# where a symlink of the image's (d -> /etc) leads from the host's / (merged/d is /etc).")
	p("inbox() {")
	p("  _p=\"$BOXDIR/merged\" _b= _r=${1#/}")
	p("  while [ -n \"$_r\" ]; do")
	p("    _c=${_r%%%%/*}")
	p("    case $_r in */*) _r=${_r#*/} ;; *) _r= ;; esac")
	p("    [ -n \"$_c\" ] || continue")
	p("    _p=$_p/$_c _b=$_b/$_c")
	p("    case $_c in .|..) say \"$1: a path in the box with a $_c in it: the script mounts only on plain paths\"; exit 1 ;; esac")
	p("    if [ -L \"$_p\" ]; then")
	p("      say \"$1: $_b in the box's root is a symlink (-> $(readlink -- \"$_p\")), which the host would follow from its own /: the script makes nothing through a symlink of the box's. Mount on the path it leads to inside the box instead\"")
	p("      exit 1")
	p("    fi")
	p("    [ -e \"$_p\" ] || return 0   # mkdir -p makes the rest: directories, no symlinks")
	p("  done")
	p("}")
	p("# say MSG: MSG on stderr, its control characters (from the box's paths) shown as ?")
	p("say() { { printf '%%s' \"$0: $*\" | LC_ALL=C tr -c '[:print:]' '?'; echo; } >&2; }")
}

// hostPath is where the script finds the host's tools (unshare, mount,
// pivot_root) before the image's Env replaces it.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func pidNote(ns []string) string {
	if slices.Contains(ns, "pid") {
		return " (--fork: the shell after it is PID 1)"
	}
	return ""
}

func orRoot(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// commentSafe is s for a comment line of the script: a control
// character (a newline would end the comment) shown as '?'.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
