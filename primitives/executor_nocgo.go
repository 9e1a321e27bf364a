//go:build !cgo

package primitives

// stepbox's executor is C (executor.c), compiled by cgo. This build has
// cgo off: CGO_ENABLED=0, or no C compiler was found. The name below is
// the compiler's error message: install gcc and libc6-dev (Debian and
// Ubuntu: apt-get install gcc libc6-dev) and build again.
type executor = stepbox_needs_cgo__install_gcc_and_libc6_dev_then_build_again
