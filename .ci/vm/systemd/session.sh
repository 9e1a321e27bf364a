#!/bin/bash
# The VM user's login shell on ttyS0 (uid 1000, in session-N.scope): wait
# for the user's own manager, then run the suites as root through sudo as
# a learner runs `sudo stepbox`: from this login session, then from a
# scope under user@1000.service/app.slice, where a desktop terminal's
# shell sits; then every lesson rootless, as this user. The last line is "VM-TESTS: PASS" or "VM-TESTS: FAIL (…)";
# then the VM powers off.
echo "VM-LOGIN: $(id -un) (uid $(id -u)) in $(cut -d: -f3- /proc/self/cgroup), $(cut -d' ' -f1 /proc/uptime)s after boot"
echo "VM-USER-MANAGER: $(timeout 120 systemctl --user is-system-running --wait 2>&1)"
failed=
sudo -n /usr/local/lib/stepbox-vm/suite.sh session </dev/null 2>&1 || failed="$failed session"
systemd-run --user --scope --quiet -- sudo -n /usr/local/lib/stepbox-vm/suite.sh app </dev/null 2>&1 || failed="$failed app"
# Rootless, as this user without sudo, from this login session: every
# lesson's solution through `stepbox lesson check`, its state dir the
# default one under $XDG_RUNTIME_DIR, cgroups through the user manager's
# delegation. A lesson stopped at a step that cannot work rootless is
# reported as refused, with its reason; any other problem fails the pass.
# The VM's state is captured as root (suite.sh state) before and after.
rootless() {
	echo "VM-PASS: rootless: $(id -un) (uid $(id -u)) in $(cut -d: -f3- /proc/self/cgroup), XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR, $(cut -d' ' -f1 /proc/uptime)s"
	# doctor first: its D-Bus call starts the user's dbus.service (socket
	# activation), which a desktop session has running before any stepbox.
	/usr/local/bin/stepbox doctor --plain 2>&1 | sed "s/^/VM-DOCTOR: rootless: /"
	sudo -n /usr/local/lib/stepbox-vm/suite.sh state >/tmp/state.before.rootless || { echo "VM-PASS: rootless: FAIL (no capture)"; return 1; }
	t0=$(cut -d' ' -f1 /proc/uptime)
	budget=$(awk -v b="$(cat /srv/stepbox/budget)" -v u="$t0" 'BEGIN{t=int(b-u); if (t<10) t=10; print t}')
	timeout "$budget" /usr/local/bin/stepbox --plain lesson check </dev/null >/tmp/rootless.log 2>&1
	rc=$?
	sed 's/^/VM-ROOTLESS: /' /tmp/rootless.log
	secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{printf "%.1f", b-a}')
	ok=$(grep -c '^ok ' /tmp/rootless.log)
	refused=$(grep -c '^ok .*: refused rootless at ' /tmp/rootless.log)
	bad=$(grep -c '^FAIL ' /tmp/rootless.log)
	result=PASS
	if [ $rc != 0 ] || [ "$bad" != 0 ] || [ "$ok" = 0 ]; then result=FAIL; fi
	echo "VM-PKG: rootless lesson-check $result ${secs}s (exit $rc; $ok lessons ok, $refused of them refused rootless at a step with its reason; $bad failed)"
	sudo -n /usr/local/lib/stepbox-vm/suite.sh state >/tmp/state.after.rootless
	if ! cmp -s /tmp/state.before.rootless /tmp/state.after.rootless; then
		echo "VM-INIT: rootless: the lessons did not leave the VM as they found it (- before, + after):"
		diff -U0 /tmp/state.before.rootless /tmp/state.after.rootless | grep '^[-+][a-z]'
		result=FAIL
	fi
	echo "VM-PASS: rootless: $result"
	[ $result = PASS ]
}
rootless || failed="$failed rootless"
if [ -z "$failed" ]; then
	echo "VM-TESTS: PASS"
else
	echo "VM-TESTS: FAIL ($(echo $failed))"
fi
sync
sudo -n systemctl poweroff
sleep 600
