// Package rootfs builds a box's root filesystem one kernel step at a time
// — an overlay of read-only layers over a per-box upper dir, the usual
// container mounts (proc, sys, a minimal dev, tmpfs, bind volumes),
// pivot_root and, for contrast, chroot — and reads the result back: the
// layer stack with its copy-ups and whiteouts, and mount tables.
//
// Every function that mounts performs its syscalls through a Kernel: the
// box's executor (one op per syscall, in the box's own mount namespace),
// and refuses to run in the host's (see ErrHostMountNamespace). Each
// returns the *step.Step it recorded, also when it fails; run against
// Planning, the same code writes the plan `explain` prints.
//
// Paths. Layer, upper, work and merged dirs and bind sources are host
// paths. The mount helpers take the box's current root and a path inside
// it: before pivot_root (or chroot) the root is the host path of the
// merged dir, so MountProc(merged, "/proc") mounts on merged+"/proc";
// afterwards the root is "/". A path inside the root is resolved in it
// (openat2 RESOLVE_IN_ROOT), so a symlink in an image such as
// /etc -> /host/etc cannot point a mount outside the box, and missing
// directories on the way are created, each mkdir recorded.
package rootfs
