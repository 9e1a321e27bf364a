#!/bin/bash
# The VM user's login shell on ttyS0 (uid 1000, in session-N.scope): wait
# for the user's own manager, then run the suites as root through sudo as
# a learner runs `sudo stepbox`: from this login session, then from a
# scope under user@1000.service/app.slice, where a desktop terminal's
# shell sits. The last line is "VM-TESTS: PASS" or "VM-TESTS: FAIL (…)";
# then the VM powers off.
echo "VM-LOGIN: $(id -un) (uid $(id -u)) in $(cut -d: -f3- /proc/self/cgroup), $(cut -d' ' -f1 /proc/uptime)s after boot"
echo "VM-USER-MANAGER: $(timeout 120 systemctl --user is-system-running --wait 2>&1)"
failed=
sudo -n /usr/local/lib/stepbox-vm/suite.sh session </dev/null 2>&1 || failed="$failed session"
systemd-run --user --scope --quiet -- sudo -n /usr/local/lib/stepbox-vm/suite.sh app </dev/null 2>&1 || failed="$failed app"
# TODO(issue 19, item 2): once stepbox has a rootless mode, run the suites a
# third time as this user without sudo (suite.sh as uid 1000, its state
# dir under $XDG_RUNTIME_DIR), between the same before/after captures.
if [ -z "$failed" ]; then
	echo "VM-TESTS: PASS"
else
	echo "VM-TESTS: FAIL ($(echo $failed))"
fi
sync
sudo -n systemctl poweroff
sleep 600
