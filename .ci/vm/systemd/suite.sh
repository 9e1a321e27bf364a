#!/bin/bash
# suite.sh PLACEMENT, run as root through sudo by the VM's user
# (session.sh): check that it sits where PLACEMENT says (session: the
# login's session-N.scope; app: a scope under user@1000.service/app.slice),
# capture the VM's cgroup tree, controllers, systemd units and mounts, run
# the suites of that placement, capture again. Exits 0 when every suite
# passed and the captures match.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 TERM=dumb
src=/srv/stepbox
cg=/sys/fs/cgroup
placement=$1
fail() { echo "VM-INIT: $placement: $*"; exit 1; }

# What the suites must leave as they found it: every cgroup with its
# controllers and the controllers it enables for its children, every
# system unit and its state, the mounts, stepbox processes. `suite.sh
# state` prints it (the rootless pass in session.sh captures it so).
vm_state() {
	find $cg -type d | sort | while read -r d; do
		echo "cgroup ${d#$cg}/ controllers=[$(cat "$d/cgroup.controllers")] subtree_control=[$(cat "$d/cgroup.subtree_control")]"
	done
	systemctl list-units --all --no-legend --plain --no-pager | awk '{print "unit", $1, $2, $3, $4}' | sort
	awk '{print "mount", $5, $9}' /proc/self/mountinfo | sort
	ps -eo pid=,args= | awk '$2 ~ /stepbox$/ && $3 ~ /^__/ {print "process " $0}'
}
if [ "$placement" = state ]; then
	vm_state
	exit 0
fi

system=$(timeout 180 systemctl is-system-running --wait)
echo "VM-SYSTEM: $system"
if [ "$system" != running ]; then
	# Report the failed units; the suites still run (they need no network, no timers).
	systemctl --failed --no-legend --plain --no-pager | sed 's/^/VM-FAILED-UNIT: /'
fi
[ -e $cg/cgroup.controllers ] || fail "/sys/fs/cgroup is not cgroup v2"
me=$(cut -d: -f3- /proc/self/cgroup)
case $placement:$me in
session:/user.slice/user-1000.slice/session-*.scope) ;;
app:/user.slice/user-1000.slice/user@1000.service/app.slice/*.scope) ;;
*) fail "sudo's command runs in $me, not where the $placement pass belongs" ;;
esac
systemctl is-active --quiet user@1000.service || fail "user@1000.service is not active"
user=$cg/user.slice/user-1000.slice/user@1000.service
echo "VM-PASS: $placement: $(uname -r), systemd $(systemctl --version | awk 'NR==1{print $2}'), $(cut -d' ' -f1 /proc/uptime)s," \
	"root controllers: $(cat $cg/cgroup.controllers), user@1000 delegates: $(cat $user/cgroup.subtree_control), stepbox runs in $me"

# What stepbox's doctor says here, as the learner would read it (its
# verdicts are the doctor tests' business, not this run's).
/usr/local/bin/stepbox doctor --plain 2>&1 | sed "s/^/VM-DOCTOR: $placement: /"

vm_state >/run/state.before.$placement

export STEPBOX_MUST_WORK=1 STEPBOX_BIN=/usr/local/bin/stepbox HOME=/root
failed=
while read -r where name rel run skip; do
	[ "$where" = "$placement" ] || continue
	cd "$src/src/$rel" || fail "cd $src/src/$rel"
	t0=$(cut -d' ' -f1 /proc/uptime)
	# Never past the VM's budget: a hung test ends in Go's timeout panic,
	# which names it, before qemu is killed.
	timeout=$(awk -v b="$(cat $src/budget)" -v u="$t0" 'BEGIN{t=int(b-u); if (t<10) t=10; print t}')
	echo "=== $placement: package $rel -run '$run' -skip '$skip' (timeout ${timeout}s)"
	# Each top-level test's start goes to the console as it starts, so a
	# VM killed by the timeout still shows which test it was in.
	"$src/tests/$name.test" -test.v -test.count=1 -test.timeout=${timeout}s -test.run "$run" \
		-test.skip "$skip" 2>&1 </dev/null | tee /tmp/$name.log |
		grep --line-buffered -E '^=== RUN +[^/]+$' | sed -u "s|^=== RUN *|VM-RUN: $placement $rel |"
	rc=${PIPESTATUS[0]}
	secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{printf "%.1f", b-a}')
	skips=$(grep -c -e '--- SKIP' /tmp/$name.log)
	tests=$(grep -c -e '^--- ' /tmp/$name.log)
	if [ $rc = 0 ] && [ "$skips" = 0 ]; then
		grep -E '^--- PASS|^(ok|PASS)$' /tmp/$name.log
		echo "VM-PKG: $placement $rel PASS ${secs}s ($tests tests)"
	else
		cat /tmp/$name.log
		why="exit $rc"
		[ "$skips" = 0 ] || why="$why, $skips skipped with STEPBOX_MUST_WORK=1"
		echo "VM-PKG: $placement $rel FAIL ${secs}s ($why; failed: $(grep -E '^--- FAIL' /tmp/$name.log | awk '{print $3}' | tr '\n' ' '))"
		failed="$failed $rel"
	fi
	cd /
done <$src/suites

vm_state >/run/state.after.$placement
if ! cmp -s /run/state.before.$placement /run/state.after.$placement; then
	echo "VM-INIT: $placement: the suites did not leave the VM as they found it (- before, + after):"
	diff -U0 /run/state.before.$placement /run/state.after.$placement | grep '^[-+][a-z]'
	failed="$failed vm-changed"
fi
[ -z "$failed" ] || { echo "VM-PASS: $placement: FAIL ($(echo $failed))"; exit 1; }
echo "VM-PASS: $placement: PASS"
