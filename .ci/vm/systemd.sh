#!/usr/bin/env bash
# make test-vm-systemd: the cgroup suites on the machine most learners
# have (issue 19): Debian 12 with systemd as PID 1, pure cgroup v2, a user
# (uid 1000) logged in on the console, and stepbox run as root through
# sudo from that user's session. The image is built from Debian's
# packages with mmdebstrap (systemd, dbus, dbus-user-session, sudo and
# Debian's cloud kernel, whose initramfs loads virtio_blk), written to an
# ext4 disk with mkfs.ext4 -d, and booted under qemu (TCG: no KVM here).
# getty logs the user in on ttyS0 (systemd/image.sh); their login shell
# runs systemd/session.sh, which runs systemd/suite.sh under sudo twice:
# from the session scope, then from a scope in app.slice. suite.sh runs
# the test binaries compiled here between two captures of the VM's
# cgroup tree, controllers, systemd units and mounts, which must match;
# then session.sh powers the VM off. Nothing is kept between runs unless
# STEPBOX_VM_REUSE=1 (a developer's loop): the image lives in the build
# dir only.
#
# Environment:
#   STEPBOX_VM_DIR      build dir (default /var/tmp/stepbox-vm-systemd)
#   STEPBOX_VM_REUSE    1: boot the image the last run built, only the
#                       test binaries are new
#   STEPBOX_VM_ACCEL    qemu accelerator (default tcg)
#   STEPBOX_VM_TIMEOUT  seconds before qemu is killed (default 2100: the VM
#                       run took 474-1051 s alone and 1008 s beside another
#                       VM, where the rootless pass ran out of budget; a
#                       loaded host runs qemu slower)
set -euo pipefail
t_start=$(date +%s.%N)
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/.ci/vm
out=${STEPBOX_VM_DIR:-/var/tmp/stepbox-vm-systemd}
root=$out/root
disk=$out/disk.ext4
log=$out/console.log
vm_timeout=${STEPBOX_VM_TIMEOUT:-2100}
export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive

# Where stepbox starts, and which tests run there. "session": as root
# through sudo from the user's login session (session-N.scope), the
# terminal of a console or ssh login. "app": the same from a scope under
# user@1000.service/app.slice, where a desktop's terminal puts its shell
# (systemd-run --user --scope stands in for it). Each runs the cgroup
# package, the primitives (placement, attach, limits, teardown) and the
# shell's cgroup tests; the session pass also every lesson's solution
# (lesson 5's cgroups among them) and the lessons' other tests, which
# take two to four minutes more under TCG. Not here: the demos' replay of
# those same solutions (one to two minutes more, no other kernel work),
# and the live view's Chromium tests (no browser in the VM).
# Format: placement package run-pattern skip-pattern.
suites=(
	session ./primitives/cgroups . ""
	session ./primitives . ""
	session ./repl "Cgroup|Lesson|Rootless" "^TestDemoPlaysEveryLesson"
	app ./primitives/cgroups . ""
	app ./primitives . ""
	app ./repl "Cgroup" ""
)
# Debian packages of the image beyond systemd's: the programs the tests
# and lessons call (busybox for the base layer, ip, nft, tmux, runc).
packages=(
	systemd systemd-sysv dbus dbus-user-session libpam-systemd sudo uidmap
	linux-image-cloud-amd64 initramfs-tools kmod
	util-linux procps iproute2 nftables conntrack tmux busybox-static runc
)

say() { printf 'test-vm-systemd: %s\n' "$*"; }
die() { printf 'test-vm-systemd: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, and the image holds root-owned files)"
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$out"

# --- the image --------------------------------------------------------------
t_build=$(date +%s.%N)
if [ "${STEPBOX_VM_REUSE:-}" = 1 ] && [ -e "$root/.built" ]; then
	say "reusing the image in $root (STEPBOX_VM_REUSE=1)"
	rm -rf "$root/srv/stepbox" "$root/usr/local/bin/stepbox"
else
	rm -rf "$root"
	# This host's Debian sources (the archive and its security updates).
	sources=/etc/apt/sources.list.d/debian.sources
	[ -e "$sources" ] || sources=/etc/apt/sources.list
	say "mmdebstrap bookworm: ${packages[*]}"
	# The initramfs needs only the virtio disk (ext4 is built in):
	# MODULES=list makes it small and quick to build. dpkg need not sync
	# what a failed build throws away anyway.
	mmdebstrap --quiet --variant=apt --dpkgopt=force-unsafe-io --include="$(
		IFS=,
		echo "${packages[*]}"
	)" \
		--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
		--setup-hook='printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/stepbox-vm"' \
		--setup-hook='printf "virtio_pci\nvirtio_blk\n" >"$1/usr/share/initramfs-tools/modules.d/stepbox-vm"' \
		--customize-hook="sh '$here/systemd/image.sh' \"\$1\"" \
		bookworm "$root" "$sources"
	touch "$root/.built"
	say "mmdebstrap took $(elapsed "$t_build")s"
fi

# --- the binaries and the scripts ---------------------------------------------
install -D -m 0755 -t "$root/usr/local/lib/stepbox-vm" "$here/systemd/session.sh" "$here/systemd/suite.sh"
cd "$repo"
t_go=$(date +%s.%N)
say "go build stepbox"
go build -o "$root/usr/local/bin/stepbox" .
mkdir -p "$root/srv/stepbox/tests"
: >"$root/srv/stepbox/suites"
declare -A built=()
for ((i = 0; i < ${#suites[@]}; i += 4)); do
	placement=${suites[i]} pkg=${suites[i + 1]} run=${suites[i + 2]} skip=${suites[i + 3]}
	rel=${pkg#./}
	name=$(tr / _ <<<"$rel")
	if [ -z "${built[$name]:-}" ]; then
		say "go test -c $pkg"
		go test -c -o "$root/srv/stepbox/tests/$name.test" "$pkg"
		mkdir -p "$root/srv/stepbox/src/$rel"
		[ -d "$rel/testdata" ] && cp -a "$rel/testdata" "$root/srv/stepbox/src/$rel/"
		built[$name]=1
	fi
	printf '%s %s %s %s %s\n' "$placement" "$name" "$rel" "$run" "^TestLiveViewDraws${skip:+|$skip}" >>"$root/srv/stepbox/suites"
done
cp README.md "$root/srv/stepbox/src/"
mkdir -p "$root/srv/stepbox/src/lessons" && cp lessons/*.md "$root/srv/stepbox/src/lessons/"
say "the binaries took $(elapsed "$t_go")s"
echo $((vm_timeout - 90)) >"$root/srv/stepbox/budget" # seconds of uptime the suites may use

vmlinuz=$(ls "$root"/boot/vmlinuz-* | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | tail -n1)
kver=${vmlinuz##*/vmlinuz-}
rm -f "$disk"
# Room for the tests' temp dirs and layers; sparse, so it costs what is written.
truncate -s 6G "$disk"
mkfs.ext4 -q -F -L stepbox-vm -d "$root" "$disk"
build_secs=$(elapsed "$t_build")
say "image: kernel $kver, $(du -sh "$root" | cut -f1) root, built in ${build_secs}s"

# --- boot -------------------------------------------------------------------
accel=${STEPBOX_VM_ACCEL:-tcg}
say "booting under qemu ($accel), console in $log"
t_boot=$(date +%s.%N)
rm -f "$log" "$out/login-secs"
rc=0
timeout "$vm_timeout" qemu-system-x86_64 -machine q35 -accel "$accel" -m 3072 -smp 2 \
	-nographic -nic none -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
	-drive "file=$disk,if=virtio,format=raw,cache=unsafe" \
	-append "console=ttyS0 root=/dev/vda rw quiet panic=-1 systemd.show_status=error" \
	</dev/null 2>&1 | sed -u -e 's/\r*$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c=>]//g' | while IFS= read -r line; do
	printf '%s\n' "$line"
	if [[ $line == VM-LOGIN* ]]; then elapsed "$t_boot" >"$out/login-secs"; fi
done | tee "$log" || rc=$?
vm_secs=$(elapsed "$t_boot")

echo
say "summary ($kver, systemd, sudo from the user's session)"
grep -a '^VM-PKG: ' "$log" | sed 's/^VM-PKG: /  /' || true
say "image build ${build_secs}s, boot to login $(cat "$out/login-secs" 2>/dev/null || echo '?')s, VM run ${vm_secs}s, total $(elapsed "$t_start")s"
if grep -aq '^VM-TESTS: PASS$' "$log"; then
	say "PASS"
	exit 0
fi
result=$(grep -a '^VM-TESTS: ' "$log" | tail -n1 || true)
say "${result:-no result: the VM died or timed out after ${vm_secs}s (qemu exit $rc)}"
exit 1
