# stepbox: `make run` starts the shell, `make test` runs the tests.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := ./stepbox

.PHONY: build run test test-unit bench soak lint deps clean

# The box's executor is C (cgo): gcc and libc6-dev, installed when missing.
build:
	@bash .ci/deps.sh cc
	$(GO) build -o $(BIN) .

# The REPL needs root for namespaces, mounts and cgroups: re-run under sudo.
run: build
	@if [ "$$(id -u)" = 0 ]; then exec $(BIN); \
	elif command -v sudo >/dev/null; then echo "stepbox needs root for namespaces, mounts and cgroups: running it with sudo"; exec sudo $(BIN); \
	else echo "stepbox needs root (namespaces, mounts, cgroups) and sudo is not installed: run 'make run' as root" >&2; exit 1; fi

# Debian packages the tests use: a static busybox for the base layer,
# util-linux's lsns/findmnt/nsenter for cross-checks, tmux for the
# real-terminal test. Installed only when missing.
deps:
	@bash .ci/deps.sh

# As root the integration tests run on the real kernel; STEPBOX_MUST_WORK=1
# turns every skip into a failure.
test: deps build
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 30m ./...

# The suites again as stepbox would run inside a container: a new PID
# namespace (short PIDs, PID 1 is not the host's init) and a mount
# namespace that is not the initial one but is still "the host".
.PHONY: test-container
test-container: build
	unshare --pid --fork --mount-proc $(GO) test -p 1 -count=1 -timeout 30m ./...

test-unit:
	$(GO) test -count=1 -short ./...

# The test suites as root on a Debian cgroup-v2 kernel under qemu (no KVM),
# booted from an initramfs built from Debian packages: see .ci/vm/run.sh.
.PHONY: test-vm
test-vm:
	@bash .ci/vm/run.sh

# Side by side with runc, bubblewrap and unshare, plus the Go benchmarks:
# writes bench/RESULTS.md (bench/run.sh installs runc, bwrap, hyperfine).
bench:
	@bash bench/run.sh

# The reliability suite in full (STEPBOX_SOAK=1) and each fuzz target for
# FUZZTIME (60s); the figures go into bench/RESULTS.md.
soak: deps
	@bash bench/soak.sh

lint:
	@out=$$(gofmt -l . | grep -v '^vendor/'); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -f $(BIN)
