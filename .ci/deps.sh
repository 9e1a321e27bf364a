#!/usr/bin/env bash
# Installs the Debian packages stepbox's tests and benchmarks need, when
# they are missing. Nothing is downloaded from anywhere but Debian.
set -euo pipefail
need=()
# The box's executor is C, built by cgo: a compiler and the C library's headers.
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
if [ "${1:-}" != cc ]; then
  command -v busybox >/dev/null || [ -x /bin/busybox ] || need+=(busybox-static)
  command -v lsns >/dev/null || need+=(util-linux)
  command -v tmux >/dev/null || need+=(tmux)
  command -v setpriv >/dev/null || need+=(util-linux)
  # caps' tests cross-check stepbox's capability names with libcap's.
  command -v capsh >/dev/null || need+=(libcap2-bin)
  command -v ip >/dev/null || need+=(iproute2)
  command -v nft >/dev/null || need+=(nftables)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v ps >/dev/null || need+=(procps)
  command -v runc >/dev/null || need+=(runc) # export bundle's cross-check
  # Rootless boxes map a subordinate range through these setuid helpers.
  command -v newuidmap >/dev/null || need+=(uidmap)
  # The live view's test loads the page in headless Chromium.
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ "${1:-}" = bench ]; then
  command -v bwrap >/dev/null || need+=(bubblewrap)
  command -v hyperfine >/dev/null || need+=(hyperfine)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} (run as root to install them)" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
