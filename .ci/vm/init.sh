#!/bin/busybox sh
# /init of the test VM (busybox sh). It runs twice:
#  1. on the initramfs, which is the kernel's rootfs mount. pivot_root(2)
#     refuses to move the rootfs ("EINVAL: the current root is on the rootfs",
#     man 2 pivot_root), so everything moves to a tmpfs and switch_root
#     starts this script again there;
#  2. on that tmpfs: mount the API filesystems with cgroup2 as the only
#     hierarchy, load the modules, lay the cgroup tree out as systemd does,
#     and run each package's test binary from a copy of its source dir.
# The last line is "VM-TESTS: PASS" or "VM-TESTS: FAIL (pkg…)"; run.sh
# passes or fails on it.
# Debian's PATH for root: layers built from busybox have a real /bin.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

if [ "$1" != stage2 ]; then
	busybox mount -t devtmpfs devtmpfs /dev
	exec </dev/console >/dev/console 2>&1
	busybox mount -t tmpfs -o mode=0755 tmpfs /newroot
	for e in /*; do
		case $e in /newroot|/dev|/proc|/sys) continue ;; esac
		busybox cp -a "$e" /newroot/
	done
	busybox mkdir -p /newroot/dev /newroot/proc /newroot/sys
	busybox mount --move /dev /newroot/dev
	exec busybox switch_root /newroot /init stage2
fi

fail() { echo "VM-INIT: $*"; echo "VM-TESTS: FAIL (init)"; sync; busybox poweroff -f; }

busybox mount -t proc proc /proc || fail "mount proc"
busybox mount -t sysfs sysfs /sys || fail "mount sysfs"
busybox mkdir -p /dev/pts /dev/shm
busybox mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
busybox mount -t tmpfs -o mode=1777 tmpfs /dev/shm
busybox mount -t tmpfs -o mode=0755 tmpfs /run
# cgroup v2 only, with the options systemd mounts it with.
busybox mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	fail "mount cgroup2"
[ -e /sys/fs/cgroup/cgroup.controllers ] || fail "no cgroup.controllers: not cgroup v2"

read -r KVER </etc/vm/kernel-release
for ko in $(busybox cat /etc/vm/modules); do
	busybox insmod "/lib/modules/$KVER/$ko" || fail "insmod $ko"
done
busybox ip link set lo up || fail "ip link set lo up"
# /tmp, where the tests make their temp dirs, is an empty ext4 disk of its
# own: run.sh says why it is not a tmpfs.
busybox mount -t ext4 /dev/vda /tmp || fail "mount /dev/vda (ext4) on /tmp"
busybox chmod 1777 /tmp
busybox hostname stepbox-vm
# PIDs of a host that has been up a while (5 digits, pid_max is 32768
# here): the transcripts' golden tables are as wide as such PIDs make them.
echo 10000 >/proc/sys/kernel/ns_last_pid || fail "write ns_last_pid"

# The cgroup tree of a Debian 12 host under systemd: cpuset cpu io memory
# pids enabled at the root, only memory and pids for the user slices (CPU
# accounting needs no cpu controller on v2), and the tests in a session
# scope that holds processes, as a learner's shell is.
cg=/sys/fs/cgroup
echo "+cpuset +cpu +io +memory +pids" >$cg/cgroup.subtree_control || fail "enable controllers at the root"
session=$cg/user.slice/user-0.slice/session-1.scope
busybox mkdir -p $session
for d in $cg/user.slice $cg/user.slice/user-0.slice; do
	echo "+memory +pids" >$d/cgroup.subtree_control || fail "enable memory pids in $d"
done
echo $$ >$session/cgroup.procs || fail "move init to $session"

echo "VM-BOOTED: $(busybox uname -r), uptime $(busybox cut -d' ' -f1 /proc/uptime)s," \
	"cgroup2 controllers: $(busybox cat $cg/cgroup.controllers)," \
	"modules: $(busybox cut -d' ' -f1 /proc/modules | busybox tr '\n' ' ')"

# What the suite must leave as it found it (each test checks too; this
# catches what falls between tests): cgroups and the controllers each
# switches on for its children (stepbox switches cpu on above its parent
# cgroup for a session's lifetime), mounts, stepbox processes.
host_state() {
	busybox find $cg -type d | busybox sed 's/^/cgroup /'
	for f in $(busybox find $cg -name cgroup.subtree_control); do
		echo "subtree_control ${f%/*}: $(busybox cat "$f")"
	done
	busybox awk '{print "mount " $5 " " $9}' /proc/self/mountinfo
	busybox ps -o pid,args | busybox awk '$2 == "stepbox" && $3 ~ /^__/ {print "process " $0}'
}
host_state | busybox sort >/run/state.before
export STEPBOX_MUST_WORK=1 STEPBOX_BIN=/usr/local/bin/stepbox
failed=
while read -r name rel; do
	cd "/src/$rel" || fail "cd /src/$rel"
	t0=$(busybox cut -d' ' -f1 /proc/uptime)
	# At most 35 minutes (the repl suite alone took 3 to 22 under
	# software emulation, by how busy the host was), and never past the
	# VM's budget: a hung test then ends in Go's timeout panic, which
	# names it, before qemu is killed.
	timeout=$(busybox awk -v b="$(busybox cat /etc/vm/budget)" -v u="$t0" 'BEGIN{t=int(b-u); if (t>2100) t=2100; if (t<10) t=10; print t}')
	echo "=== package $rel (timeout ${timeout}s)"
	# The VM holds no browser: the live view's Chromium tests (TestLiveViewDraws…) run on the
	# host only (its kernel side, the cgroup bars, runs here too).
	run=$(busybox cat /etc/vm/run 2>/dev/null)
	"/tests/$name.test" -test.v -test.count=1 -test.timeout=${timeout}s -test.skip '^TestLiveViewDraws' ${run:+-test.run "$run"} >/tmp/$name.log 2>&1 </dev/null
	rc=$?
	t1=$(busybox cut -d' ' -f1 /proc/uptime)
	secs=$(busybox awk "BEGIN{printf \"%.1f\", $t1-$t0}")
	# STEPBOX_MUST_WORK=1 makes a skip a failure (DESIGN.md, Testing),
	# including a t.Skip that does not check it.
	skips=$(busybox grep -c -e '--- SKIP' /tmp/$name.log)
	if [ $rc = 0 ] && [ "$skips" = 0 ]; then
		# Passing: one line per top-level test.
		busybox grep -E '^--- PASS|^(ok|PASS)$' /tmp/$name.log
		echo "VM-PKG: $rel PASS ${secs}s"
	else
		busybox cat /tmp/$name.log
		why="exit $rc"
		[ "$skips" = 0 ] || why="$why, $skips skipped with STEPBOX_MUST_WORK=1"
		echo "VM-PKG: $rel FAIL ${secs}s ($why)"
		failed="$failed $rel"
	fi
	cd /
done </etc/vm/packages

host_state | busybox sort >/run/state.after
if ! busybox cmp -s /run/state.before /run/state.after; then
	echo "VM-INIT: the suite did not leave the VM as it found it (- before, + after):"
	busybox diff /run/state.before /run/state.after | busybox grep '^[-+][a-z]'
	failed="$failed (host-changed)"
fi
if [ -z "$failed" ]; then
	echo "VM-TESTS: PASS"
else
	echo "VM-TESTS: FAIL ($(echo $failed))"
fi
sync
busybox poweroff -f
