#!/bin/sh
# mmdebstrap's customize hook for make test-vm-systemd (systemd.sh): the
# machine a learner has. A user, uid 1000, logged in on the serial console
# by getty (pam_systemd makes session-N.scope and starts user@1000.service)
# and allowed sudo without a password; a login shell that runs the suites.
# $1 is the image's root.
set -eu
r=$1
echo stepbox-vm >"$r/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 stepbox-vm\n::1 localhost\n' >"$r/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$r/etc/fstab"

chroot "$r" useradd --create-home --uid 1000 --shell /bin/bash --comment "stepbox learner" learner
printf 'learner ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$r/etc/sudoers.d/learner"
chmod 0440 "$r/etc/sudoers.d/learner"

# A real login on ttyS0 (console=ttyS0 makes systemd start its getty).
d=$r/etc/systemd/system/serial-getty@ttyS0.service.d
mkdir -p "$d"
cat >"$d/autologin.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin learner --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
UNIT
# The login shell runs the session once; it ends by powering off.
cat >"$r/home/learner/.bash_profile" <<'PROFILE'
if [ "$(tty)" = /dev/ttyS0 ]; then
	exec /usr/local/lib/stepbox-vm/session.sh
fi
PROFILE
chroot "$r" chown learner:learner /home/learner/.bash_profile

# Nothing of the machine's own changes units while the suites run and the
# before/after comparison is made: no timers (apt, fstrim, tmpfiles-clean).
chroot "$r" systemctl mask --quiet timers.target
