package export

import (
	"regexp"
	"strings"

	"stepbox/primitives/step"
)

// envName is a POSIX environment variable name (XBD 8.1, the shell's
// name): the only names the script writes, as shell words, unquoted.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// unsecvars are the variables glibc's loader drops for a setuid program
// (AT_SECURE, sysdeps/generic/unsecvars.h), and GLIBC_TUNABLES: each
// makes a host tool load or read a file the image names. Every LD_*
// and MALLOC_* name is dropped too (hostUnsafe).
var unsecvars = map[string]bool{
	"GCONV_PATH": true, "GETCONF_DIR": true, "HOSTALIASES": true, "LOCALDOMAIN": true, "LOCPATH": true,
	"MALLOC_TRACE": true, "NIS_PATH": true, "NLSPATH": true, "RESOLV_HOST_CONF": true, "RES_OPTIONS": true,
	"TMPDIR": true, "TZDIR": true, "GLIBC_TUNABLES": true,
}

// hostUnsafe reports whether the image's variable name, in a host
// tool's environment, would make that tool (run as root, on the host's
// side) load or read what the image chose: a library in its own layer
// with LD_PRELOAD, a gconv module with GCONV_PATH…
// A locale or time zone that is a path (LANG, LANGUAGE, LC_*, TZ with a
// '/'), which glibc also refuses for setuid programs, would have it read
// locale or zone files the image chose.
func hostUnsafe(name, value string) bool {
	if unsecvars[name] || strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "MALLOC_") {
		return true
	}
	path := name == "LANG" || name == "LANGUAGE" || name == "TZ" || strings.HasPrefix(name, "LC_")
	return path && strings.Contains(value, "/")
}

// scriptEnv is the image's Env as the script writes it: the entries
// whose name is a POSIX name, in order; bad counts the others, which the
// script leaves out (a name is shell code where the script writes it).
// On a holder script the host's nsenter carries the Env, so hostUnsafe
// names are left out too, named in held.
func scriptEnv(b Box) (keep []string, bad int, held []string) {
	for _, e := range b.Env {
		k, v, _ := strings.Cut(e, "=")
		switch {
		case !envName.MatchString(k):
			bad++
		case holder(b) && hostUnsafe(k, v):
			held = append(held, k)
		default:
			keep = append(keep, e)
		}
	}
	return keep, bad, held
}

// EnvLeftOut says which of the image's variables the script does not
// carry, and why; nil when it carries them all.
func EnvLeftOut(b Box) []string {
	_, bad, held := scriptEnv(b)
	var why []string
	if bad > 0 {
		why = append(why, step.Count(bad, "variable")+" of the image whose name is not a POSIX name ([A-Za-z_][A-Za-z0-9_]*): written in a root script, such a name is shell code")
	}
	if len(held) > 0 {
		why = append(why, strings.Join(held, " ")+": the host's nsenter, run as root before it enters the box, would load or read what they name (glibc drops them for setuid programs)")
	}
	return why
}

// envNote writes, in the script, which of the image's variables it does
// not carry (the names of bad ones never: they are what is refused).
func envNote(p func(string, ...any), b Box) {
	for _, w := range EnvLeftOut(b) {
		p("# NOT carried: %s.", w)
	}
}
