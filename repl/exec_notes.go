package repl

import (
	"fmt"
	"path/filepath"
	"strings"

	"stepbox/primitives"
)

// filter is how a text tool decides to read its standard input: when it
// is given at most scripts operands (grep's pattern, sed's script) and no
// file, or only "-". valued are its short options that take a value
// (head -n 5), whose value is no operand.
type filter struct {
	scripts int
	valued  string
	always  bool // reads stdin whatever its operands (tr, tee)
}

// filters are the POSIX and busybox text tools that read stdin when
// given no file, as their man pages say ("With no FILE, or when FILE is
// -, read standard input").
var filters = map[string]filter{
	"cat": {}, "tac": {}, "wc": {}, "rev": {}, "cksum": {}, "strings": {},
	"md5sum": {}, "sha1sum": {}, "sha256sum": {}, "sha512sum": {}, "base64": {},
	"head": {valued: "nc"}, "tail": {valued: "nc"}, "fold": {valued: "w"},
	"cut": {valued: "bcdf"}, "sort": {valued: "kotST"}, "uniq": {valued: "fsw"},
	"od": {valued: "AtNjw"}, "hexdump": {valued: "ens"}, "xxd": {valued: "cgls"}, "nl": {valued: "bdfhilnsvw"},
	"grep": {scripts: 1, valued: "efmABC"}, "egrep": {scripts: 1, valued: "efmABC"}, "fgrep": {scripts: 1, valued: "efmABC"},
	"sed": {scripts: 1, valued: "ef"}, "awk": {scripts: 1, valued: "fvF"},
	"tr": {always: true}, "tee": {always: true},
}

// readsStdin reports whether argv, a text tool, reads its standard input:
// no file operand, or "-".
func readsStdin(argv []string) bool {
	f, ok := filters[filepath.Base(argv[0])]
	if !ok {
		return false
	}
	if f.always {
		return true
	}
	var operands []string
	scripts := f.scripts
	options := true
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case options && a == "--":
			options = false
		case options && strings.HasPrefix(a, "-") && a != "-" && !strings.HasPrefix(a, "--"):
			// -n 5 or -n5: the value is the option's; -e and -f give the
			// script as an option, so none is left among the operands.
			for j := 1; j < len(a); j++ {
				if !strings.ContainsRune(f.valued, rune(a[j])) {
					continue
				}
				if a[j] == 'e' || (a[j] == 'f' && f.scripts > 0) {
					scripts = 0
				}
				if j == len(a)-1 {
					i++
				}
				break
			}
		case options && strings.HasPrefix(a, "--") && a != "--":
			if strings.HasPrefix(a, "--regexp") || strings.HasPrefix(a, "--expression") || strings.HasPrefix(a, "--file") {
				scripts = 0
			}
		default:
			operands = append(operands, a)
		}
	}
	if len(operands) > scripts {
		operands = operands[scripts:]
	} else {
		operands = nil
	}
	for _, o := range operands {
		if o != "-" {
			return false
		}
	}
	return true
}

// stdinNote says, before exec (or enter with a command: verb) runs a tool
// that reads its standard input, that it gets none: it reads end of file
// at once and ends, and what the learner types next goes to stepbox's
// prompt, not to it.
func stdinNote(verb string, argv []string) string {
	if !readsStdin(argv) {
		return ""
	}
	name := filepath.Base(argv[0])
	return fmt.Sprintf("%s %s: its stdin is /dev/null (%s never connects your terminal), so %s reads nothing and ends at once; `sh` is the interactive way, and `exec sh -c 'echo hi | %s'` pipes text in",
		verb, name, verb, name, name)
}

// hostIPC lists the host's System V IPC objects before exec runs in box
// b, when the box shares the host's IPC namespace (nil otherwise): what
// the command makes there is the host's.
func hostIPC(b *primitives.Box) []primitives.IPCObject {
	if b.Has("ipc") {
		return nil
	}
	objs, err := primitives.IPCObjects("/proc")
	if err != nil || objs == nil {
		return []primitives.IPCObject{}
	}
	return objs
}

// sayHostIPC says which System V IPC objects the box's root made in the
// host's IPC namespace since before (hostIPC's list), as `hostname`
// refuses to rename the host: they are the host's, seen by every process
// there, and outlive the box and the session.
func (sh *Shell) sayHostIPC(b *primitives.Box, before []primitives.IPCObject) {
	if before == nil {
		return
	}
	after, err := primitives.IPCObjects("/proc")
	if err != nil {
		return
	}
	root := int64(-1)
	if m, err := b.UIDMap(); err == nil {
		for _, l := range m {
			if l.Inside == 0 {
				root = l.Outside
			}
		}
	}
	for _, o := range primitives.NewIPCObjects(before, after) {
		if int64(o.CUID) != root {
			continue // someone else's on the host, made meanwhile
		}
		sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf(
			"! box %s shares the host's IPC namespace: %s %d (key 0x%08x) is the host's, seen by every process there, and outlives the box and this session; `exec %s` removes it, `unshare ipc` gives the box a table of its own",
			b.Name, o.Kind, o.ID, o.Key, o.RemoveCommand())))
	}
}
