#!/usr/bin/env bash
# make test-install: `make install` into a temporary DESTDIR puts the
# binary, the man page and the three completions where they belong and
# nothing else; the man page renders without a groff warning; the bash
# completion offers every subcommand; `stepbox version` names the commit,
# from the Makefile's build, from `go install .` and from `make install`
# run by root in a checkout another user owns.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fail() { printf 'test-install: FAIL: %s\n' "$*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

make -s install DESTDIR="$dest" >/dev/null
want=(
	usr/local/bin/stepbox
	usr/local/share/bash-completion/completions/stepbox
	usr/local/share/fish/vendor_completions.d/stepbox.fish
	usr/local/share/man/man1/stepbox.1
	usr/local/share/zsh/site-functions/_stepbox
)
got=$(cd "$dest" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
[ "$got" = "$(printf '%s\n' "${want[@]}")" ] ||
	fail "make install DESTDIR=… installed:"$'\n'"$got"$'\n'"want:"$'\n'"$(printf '%s\n' "${want[@]}")"
[ -x "$dest/usr/local/bin/stepbox" ] || fail "the binary is not executable"
stepbox=$dest/usr/local/bin/stepbox

man=$dest/usr/local/share/man/man1/stepbox.1
if command -v groff >/dev/null; then
	warnings=$(groff -man -Tutf8 -ww -z "$man" 2>&1)
	[ -z "$warnings" ] || fail "groff warns about stepbox.1: $warnings"
fi

# The bash completion, loaded into a real bash, offers every subcommand
# the binary's --help lists.
offered=$(bash -c 'source "$1"; COMP_WORDS=(stepbox ""); COMP_CWORD=1; _stepbox; printf "%s\n" "${COMPREPLY[@]}"' _ \
	"$dest/usr/local/share/bash-completion/completions/stepbox")
subs=$("$stepbox" --help | sed -nE 's/^  stepbox( \[flags\])? ([a-z]+)( |$).*/\2/p')
[ -n "$subs" ] || fail "stepbox --help lists no subcommand"
for sub in $subs; do
	grep -qx -- "$sub" <<<"$offered" || fail "bash completion does not offer $sub (it offers: $(echo $offered))"
done

if head=$(git rev-parse HEAD 2>/dev/null); then
	"$stepbox" version | grep -q "commit $head" || fail "make install's stepbox version: $("$stepbox" version), want commit $head"
	# `go install .` in a fresh clone of HEAD (the toolchain finds no
	# repository in a git worktree, whose .git is a file): it builds, and
	# the toolchain records the commit. GOFLAGS=-buildvcs=false (go env -w)
	# would stop it: the command line overrides that.
	git clone -q --no-local "$PWD" "$tmp/clone"
	(cd "$tmp/clone" && GOBIN=$tmp/gobin go install -buildvcs=true .)
	"$tmp/gobin/stepbox" version | grep -q "commit $head" ||
		fail "go install .'s stepbox version: $("$tmp/gobin/stepbox" version), want commit $head"
	# `sudo make install` in a checkout a user owns: git refuses such a
	# tree to root unless told (safe.directory), and the Makefile must
	# still build, name the commit, and leave the user's index theirs.
	if [ "$(id -u)" = 0 ]; then
		chown -R 65534:65534 "$tmp/clone"
		make -s -C "$tmp/clone" install DESTDIR="$tmp/dest2" >/dev/null
		"$tmp/dest2/usr/local/bin/stepbox" version | grep -q "commit $head" ||
			fail "make install as root in a checkout uid 65534 owns: $("$tmp/dest2/usr/local/bin/stepbox" version), want commit $head"
		owner=$(stat -c %u "$tmp/clone/.git/index")
		[ "$owner" = 65534 ] || fail "make install as root left the checkout's .git/index owned by uid $owner"
	fi
elif [ "${STEPBOX_MUST_WORK:-}" = 1 ]; then
	fail "not a git checkout: nothing to compare stepbox version's commit with"
fi
echo "test-install: PASS ($(echo "${want[@]##*/}"); $("$stepbox" version))"
