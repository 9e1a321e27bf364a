#!/usr/bin/env bash
# make bench: installs runc, bubblewrap, hyperfine and busybox-static from
# Debian when missing, builds stepbox, and writes bench/RESULTS.md.
# BENCH_NOTE="…" is printed with the results (e.g. that the machine was busy).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
if [ "$(id -u)" != 0 ]; then
  echo "make bench needs root (namespaces, mounts, cgroups, runc)" >&2
  exit 1
fi
bash .ci/deps.sh bench
make -s build BIN=./stepbox # statically linked, as `make` builds it
go run ./bench -stepbox ./stepbox -out bench/RESULTS.md -note "${BENCH_NOTE:-}" "$@"
