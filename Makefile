# stepbox: `make run` starts the shell, `make test` runs the tests.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := ./stepbox
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

# `stepbox version` names the commit: from git here, or given as
# make COMMIT=HASH [VERSION=V] when the tree is not a git checkout. The
# Makefile asks git itself and builds with -buildvcs=false: the Go
# toolchain's own stamping fails the build when git refuses the checkout,
# as it does for `sudo make install` in a checkout a user owns (git's
# safe.directory, which this command line grants for this tree only;
# GIT_OPTIONAL_LOCKS=0 keeps `git status` from rewriting its index).
GIT := GIT_OPTIONAL_LOCKS=0 git -c safe.directory=$(CURDIR)
COMMIT ?= $(shell $(GIT) rev-parse HEAD 2>/dev/null)
MODIFIED ?= $(shell [ -n "$$($(GIT) status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true)
VERSION ?=
# Linked statically (glibc's libc.a comes with libc6-dev): every box
# process is an execve of this binary, and without the dynamic loader it
# answers its first op about 0.2 ms sooner. Go's own user and DNS lookups
# (osusergo, netgo) replace glibc's NSS, which a static binary cannot load
# safely: users from /etc/passwd, names from /etc/hosts and resolv.conf.
STATIC := -tags osusergo,netgo
LDFLAGS := -X stepbox/repl.commit=$(COMMIT) -X stepbox/repl.modified=$(MODIFIED) -X stepbox/repl.version=$(VERSION) -extldflags=-static

.PHONY: build run test test-unit bench soak lint deps clean install test-install

# The box's executor is C (cgo): gcc and libc6-dev, installed when missing.
build:
	@bash .ci/deps.sh cc
	$(GO) build -buildvcs=false $(STATIC) -ldflags "$(LDFLAGS)" -o $(BIN) .

# The binary, its man page and bash, zsh and fish completion, all written
# by the binary from its command tables. DESTDIR for packagers.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/stepbox
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) __man >$(DESTDIR)$(MANDIR)/man1/stepbox.1
	$(BIN) completion bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/stepbox
	$(BIN) completion zsh >$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_stepbox
	$(BIN) completion fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/stepbox.fish

# make install into a temporary DESTDIR: every file where it belongs, the
# man page renders, and the installed stepbox names the commit.
test-install:
	@bash .ci/install-check.sh

# As root the REPL runs as is. Otherwise it offers sudo (every step works
# as root) and runs rootless when sudo is missing, declined ("r"), or
# fails: boxes in user namespaces of the learner's own, and the steps
# that change the host refused with why.
run: build
	@if [ "$$(id -u)" = 0 ]; then exec $(BIN); fi; \
	if ! command -v sudo >/dev/null; then echo "sudo is not installed: starting stepbox rootless"; exec $(BIN); fi; \
	a=; if [ -t 0 ]; then read -r -p "stepbox: run as root through sudo (every step works), or rootless (steps that change the host are refused)? [S/r] " a; fi; \
	case "$$a" in [rR]*) exec $(BIN);; esac; \
	if sudo -v; then exec sudo $(BIN); fi; \
	echo "sudo failed or was declined: starting stepbox rootless"; exec $(BIN)

# Debian packages the tests use: a static busybox for the base layer,
# util-linux's lsns/findmnt/nsenter for cross-checks, tmux for the
# real-terminal test. Installed only when missing.
deps:
	@bash .ci/deps.sh

# As root the integration tests run on the real kernel; STEPBOX_MUST_WORK=1
# turns every skip into a failure.
test: deps build test-install
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 30m ./...

# The suites again as stepbox would run inside a container: a new PID
# namespace (short PIDs, PID 1 is not the host's init) and a mount
# namespace that is not the initial one but is still "the host".
# PID 1 there is bash, as a container's init or shell would be, not go:
# every process orphaned in the namespace (the PID 1 of each removed box,
# a tmux server's shell) is reparented to PID 1, and go reaps only its
# own children. The zombies it left lived until the run ended, showing
# the maps of their user namespaces and holding their PIDs, and tests
# that wait for those to go waited out their timeouts. bash reaps every
# child while it waits for go; `exit $$?` keeps it from exec'ing go in
# its place.
.PHONY: test-container
test-container: build
	unshare --pid --fork --mount-proc bash -c '$(GO) test -p 1 -count=1 -timeout 30m ./...; exit $$?'

test-unit:
	$(GO) test -count=1 -short ./...

# The test suites as root on a Debian cgroup-v2 kernel under qemu (no KVM),
# booted from an initramfs built from Debian packages: see .ci/vm/run.sh.
.PHONY: test-vm
test-vm:
	@bash .ci/vm/run.sh

# The cgroup suites on Debian 12 with systemd as PID 1, run as root through
# sudo from a logged-in user's session scope, under qemu: see .ci/vm/systemd.sh.
.PHONY: test-vm-systemd
test-vm-systemd:
	@bash .ci/vm/systemd.sh

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
