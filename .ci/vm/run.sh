#!/usr/bin/env bash
# make test-vm: the test suites on a second, real kernel. A Debian cloud
# kernel (pure cgroup v2, unlike this hybrid host) boots under qemu without
# KVM from an initramfs that holds the compiled test binaries, the stepbox
# binary, a static busybox, the host programs the tests call with their
# libraries, and the kernel modules stepbox needs. Its /init (init.sh)
# mounts cgroup2 as the only hierarchy and runs every package's tests as
# root with STEPBOX_MUST_WORK=1. Everything comes from Debian's archive.
#
# Environment:
#   STEPBOX_VM_DIR     build dir (default /var/tmp/stepbox-vm); the kernel
#                      .deb is cached in its cache/ subdir
#   STEPBOX_VM_KERNEL  kernel series (default 6.1, Debian 12's own) or a
#                      full package name (linux-image-6.12.…-cloud-amd64)
#   STEPBOX_VM_PKGS    only these packages (import paths), for debugging
#   STEPBOX_VM_RUN     only the tests this -test.run pattern matches
#   STEPBOX_VM_ACCEL   qemu accelerator (default tcg; kvm:tcg if you have it)
#   STEPBOX_VM_TIMEOUT seconds before qemu is killed (default 2700)
set -euo pipefail
t_start=$(date +%s.%N)
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/.ci/vm
out=${STEPBOX_VM_DIR:-/var/tmp/stepbox-vm}
cache=$out/cache
root=$out/root
log=$out/console.log
export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive

# Host programs copied into the image with their libraries: what the tests
# and the lessons call (lsns, findmnt, setpriv, nsenter, unshare, ps -eo,
# chroot, ip, ipcmk, pgrep, tmux for the real-terminal test), and what the
# fixtures' FromHost base layer copies from /usr/bin (it wants dynamic host
# binaries, not busybox applets). Busybox serves the rest.
host_programs=(
	sh dash bash ls cat ps mount umount hostname ip echo mkdir rmdir rm touch
	sleep id uname env grep cp mv ln chmod chown head tail wc find sed kill
	df stat readlink true false pwd date whoami free top printf test sort
	chroot lsns nsenter setpriv findmnt unshare mountpoint tr cut xargs tmux
	pgrep pkill stty ipcmk ipcs ipcrm seq timeout dd yes nproc nft sysctl
	runc # export bundle's cross-check
	capsh # caps' cross-check of the capability names
	newuidmap newgidmap # rootless boxes with a subordinate range (set-user-ID root: cp -p keeps it)
)
# Modules stepbox needs, and the virtio disk that holds the tests' TMPDIR;
# their dependencies come from each module's .modinfo.
modules=(overlay veth virtio_pci virtio_blk bridge nf_tables nft_chain_nat nft_masq nft_fib_ipv4 nft_ct nft_nat nf_conntrack_netlink)

say() { printf 'test-vm: %s\n' "$*"; }
die() { printf 'test-vm: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and the image holds root-owned files)"
mkdir -p "$out"
rm -f "$log"

# --- Debian packages ------------------------------------------------------
apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return
	apt-get update -qq
	apt_updated=1
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v lsns >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v ps >/dev/null || need+=(procps)
command -v xz >/dev/null || need+=(xz-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v newuidmap >/dev/null || need+=(uidmap)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	apt_update
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the kernel -----------------------------------------------------------
# The newest linux-image-<series>.*-cloud-amd64 (the signed one; its image
# is the -unsigned one's plus a signature qemu ignores). The .deb is cached
# in $cache and unpacked with dpkg -x, never installed.
mkdir -p "$cache"
series=${STEPBOX_VM_KERNEL:-6.1}
kernel_candidates() {
	apt-cache search --names-only '^linux-image-.*-cloud-amd64' |
		awk '{print $1}' | grep -v -- '-dbg$' | sed 's/-unsigned$//' |
		grep -E "^linux-image-${series//./\\.}[.][0-9]" | sort -uV
}
if [[ $series == linux-image-* ]]; then
	kpkg=$series
else
	kpkg=$(kernel_candidates | tail -n1)
	if [ -z "$kpkg" ]; then
		apt_update
		kpkg=$(kernel_candidates | tail -n1)
	fi
	[ -n "$kpkg" ] || die "apt-cache knows no linux-image-$series.*-cloud-amd64"
fi
deb=$(ls "$cache/${kpkg}"_*.deb "$cache/${kpkg}-unsigned"_*.deb 2>/dev/null | tail -n1 || true)
if [ -z "$deb" ]; then
	say "downloading $kpkg into $cache"
	# Root downloads itself: _apt may not write into $cache.
	dl() { (cd "$cache" && apt-get download -qq -o APT::Sandbox::User=root "$1"); }
	dl "$kpkg" || dl "$kpkg-unsigned" || { apt_update && dl "$kpkg"; } ||
		die "apt-get download $kpkg failed"
	deb=$(ls "$cache/${kpkg}"_*.deb "$cache/${kpkg}-unsigned"_*.deb 2>/dev/null | tail -n1 || true)
	[ -n "$deb" ] || die "apt-get download $kpkg left no .deb in $cache"
fi
kdir=$cache/$(basename "$deb" .deb)
if [ ! -e "$kdir/.unpacked" ]; then
	rm -rf "$kdir"
	dpkg -x "$deb" "$kdir"
	touch "$kdir/.unpacked"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$(ls -d "$kdir"/lib/modules/"$kver" "$kdir"/usr/lib/modules/"$kver" 2>/dev/null | head -n1 || true)
[ -n "$moddir" ] || die "no modules dir for $kver in $deb"
say "kernel $kver ($(basename "$deb"))"

# --- the binaries -----------------------------------------------------------
t_build=$(date +%s.%N)
rm -rf "$root"
# The FHS dirs a host has (the lessons mount on /mnt), plus the tests.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc/vm,tests,src,root,newroot,dev,proc,sys,tmp,run,var/tmp,var/lib,mnt,opt,srv,home,media}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

cd "$repo"
# The box's executor is C (cgo); the VM has no C library, so link it in
# statically, with Go's own user and DNS lookups (no NSS).
export CGO_ENABLED=1
static=(-tags osusergo,netgo -ldflags=-extldflags=-static)
say "go build stepbox"
go build "${static[@]}" -o "$root/usr/local/bin/stepbox" .
if [ -n "${STEPBOX_VM_PKGS:-}" ]; then
	read -ra pkg_args <<<"$STEPBOX_VM_PKGS"
else
	pkg_args=(./...)
fi
list=$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' "${pkg_args[@]}") ||
	die "go list ${pkg_args[*]} failed"
mapfile -t pkgs < <(grep . <<<"$list" || true)
[ ${#pkgs[@]} -gt 0 ] || die "no package with tests in ${pkg_args[*]}"
: >"$root/etc/vm/packages"
for pkg in "${pkgs[@]}"; do
	rel=${pkg#stepbox}
	rel=${rel#/}
	rel=${rel:-.}
	name=$(tr / _ <<<"${rel/#./stepbox}")
	say "go test -c $pkg"
	go test -c "${static[@]}" -o "$root/tests/$name.test" "$pkg"
	mkdir -p "$root/src/$rel"
	[ -d "$rel/testdata" ] && cp -a "$rel/testdata" "$root/src/$rel/"
	echo "$name $rel" >>"$root/etc/vm/packages"
done
# repl's tour test reads the README, as a learner does; its lesson-check
# tests read the lessons' files.
cp README.md "$root/src/"
mkdir -p "$root/src/lessons" && cp lessons/*.md "$root/src/lessons/"

# --- busybox, host programs and their libraries ---------------------------
cp /bin/busybox "$root/usr/bin/busybox"

# copy_path P: copy P into the image at the same path; a symlink is copied
# as a symlink and its target follows.
copy_path() {
	local p=$1
	[ -e "$root$p" ] || [ -L "$root$p" ] && return 0
	mkdir -p "$(dirname "$root$p")"
	if [ -L "$p" ]; then
		cp -P "$p" "$root$p"
		local t
		t=$(readlink "$p")
		[[ $t == /* ]] || t=$(dirname "$p")/$t
		copy_path "$(realpath -s "$t")"
	else
		cp -p "$p" "$root$p"
	fi
}
copy_program() {
	local p=$1 lib
	copy_path "$p"
	# ldd prints "name => /path (addr)" and "/lib64/ld-linux… (addr)".
	while read -r lib; do
		copy_path "$lib"
	done < <(ldd "$p" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}
for prog in "${host_programs[@]}"; do
	for dir in /usr/bin /usr/sbin /bin /sbin; do
		if [ -x "$dir/$prog" ]; then
			copy_program "$(realpath -s "$dir/$prog")"
			break
		fi
	done
done
# Busybox applets fill in whatever the host did not provide, and never
# shadow a host program of the same name in the other bin dir (busybox's
# sbin/ip before iproute2's usr/bin/ip would take `ip link add … peer`).
for applet in $(busybox --list-full); do
	dst=$root/usr/${applet#usr/}
	name=${applet##*/}
	[ -e "$root/usr/bin/$name" ] || [ -e "$root/usr/sbin/$name" ] && continue
	[ -e "$dst" ] || [ -L "$dst" ] || { mkdir -p "$(dirname "$dst")"; ln -s /usr/bin/busybox "$dst"; }
done

# /etc: users for id and setpriv, the loader's search path for the
# fixtures' library resolution, and the kernel's identity.
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
# No subordinate ranges: a rootless test binds its own over these.
: >"$root/etc/subuid"
: >"$root/etc/subgid"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
echo stepbox-vm >"$root/etc/hostname"
ln -s /proc/self/mounts "$root/etc/mtab"
cp -a /etc/ld.so.conf /etc/ld.so.conf.d /etc/os-release "$root/etc/" 2>/dev/null || true
# tmux wants a terminfo entry and a UTF-8 locale (LANG=C.UTF-8).
[ -d /usr/lib/terminfo ] && cp -a /usr/lib/terminfo "$root/usr/lib/"
[ -d /usr/lib/locale/C.utf8 ] && mkdir -p "$root/usr/lib/locale" && cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
[ -e /usr/lib/os-release ] && copy_path /usr/lib/os-release
echo "$kver" >"$root/etc/vm/kernel-release"
vm_timeout=${STEPBOX_VM_TIMEOUT:-2700}
echo $((vm_timeout - 25)) >"$root/etc/vm/budget" # seconds of uptime the tests may use
printf '%s' "${STEPBOX_VM_RUN:-}" >"$root/etc/vm/run"

# --- modules ----------------------------------------------------------------
# The package ships no modules.dep (depmod writes it on install), so each
# module's dependencies come from the "depends=" string in its .modinfo
# section. A module listed in modules.builtin is part of the kernel.
declare -A ko_of=() added=()
while read -r f; do
	n=${f##*/}
	n=${n%%.ko*}
	ko_of[${n//-/_}]=${f#"$moddir"/}
done < <(find "$moddir/kernel" -name '*.ko*')
ko_cat() { # print the uncompressed module
	case $1 in
	*.xz) xz -dc "$1" ;;
	*.zst) zstd -qdc "$1" ;;
	*.gz) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac
}
mod_order=()
add_module() { # module name; its dependencies go first
	local m=${1//-/_} dep
	[ -n "${added[$m]:-}" ] && return
	added[$m]=1
	if [ -z "${ko_of[$m]:-}" ]; then
		grep -qE "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" ||
			die "module $m: neither a file nor in modules.builtin of $kver"
		say "module $m is built into $kver"
		return
	fi
	for dep in $(ko_cat "$moddir/${ko_of[$m]}" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr , ' '); do
		add_module "$dep"
	done
	mod_order+=("$m")
}
for m in "${modules[@]}"; do
	add_module "$m"
done
: >"$root/etc/vm/modules"
for m in "${mod_order[@]}"; do
	ko=${ko_of[$m]%.ko*}.ko
	mkdir -p "$(dirname "$root/lib/modules/$kver/$ko")"
	ko_cat "$moddir/${ko_of[$m]}" >"$root/lib/modules/$kver/$ko"
	echo "$ko" >>"$root/etc/vm/modules"
done

install -m 0755 "$here/init.sh" "$root/init"

# --- the image ------------------------------------------------------------
initrd=$out/initramfs.gz
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$initrd"
build_secs=$(elapsed "$t_build")
say "image: $(du -h "$initrd" | cut -f1) gzip, $(du -sh "$root" | cut -f1) unpacked, ${#pkgs[@]} test packages, built in ${build_secs}s"

# /tmp of the VM, where the tests make their temp dirs: an empty ext4 disk,
# not a tmpfs, because tmpfs has no user.* xattrs before Linux 6.6 and
# overlayfs in a user namespace keeps its whiteouts in them (userxattr).
# It is a mount of its own, as a tmpfs /tmp is on Debian 13 or Fedora.
disk=$out/scratch.ext4
rm -f "$disk"
truncate -s 4G "$disk"
mkfs.ext4 -q -F -L scratch "$disk"

# --- boot -------------------------------------------------------------------
accel=${STEPBOX_VM_ACCEL:-tcg}
say "booting $kver under qemu ($accel), console in $log"
t_boot=$(date +%s.%N)
rm -f "$out/boot-secs"
rc=0
timeout $vm_timeout qemu-system-x86_64 -machine q35 -accel "$accel" -m 2048 -smp 2 \
	-nographic -nic none -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
	-drive "file=$disk,if=virtio,format=raw,cache=unsafe" \
	-append "console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
	</dev/null 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c=>]//g' | while IFS= read -r line; do
	printf '%s\n' "$line"
	if [[ $line == VM-BOOTED* ]]; then elapsed "$t_boot" >"$out/boot-secs"; fi
done | tee "$log" || rc=$?
vm_secs=$(elapsed "$t_boot")

echo
say "summary ($kver, cgroup v2 only)"
grep -a '^VM-PKG: ' "$log" | sed 's/^VM-PKG: /  /' || true
say "image build ${build_secs}s, boot $(cat "$out/boot-secs" 2>/dev/null || echo '?')s, VM run ${vm_secs}s, total $(elapsed "$t_start")s"
if grep -aq '^VM-TESTS: PASS$' "$log"; then
	say "PASS"
	exit 0
fi
result=$(grep -a '^VM-TESTS: ' "$log" | tail -n1 || true)
say "${result:-no result: the VM died or timed out (exit $rc)}"
exit 1
