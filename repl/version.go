package repl

import (
	"runtime/debug"
	"strings"
)

// version, commit and modified ("true" when the tree had uncommitted
// changes) are set with -ldflags "-X stepbox/repl.commit=…" by the
// Makefile, from git or from make COMMIT=… outside a checkout. Without
// them, `go install .` in a checkout records the commit in the binary
// itself (debug.ReadBuildInfo's vcs.revision), unless -buildvcs=false.
var (
	version  string
	commit   string
	modified string
)

// readBuildInfo is what the Go toolchain recorded in this binary, or nil.
func readBuildInfo() *debug.BuildInfo {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return info
}

// versionLine is `stepbox version`: the version, the commit it was built
// from (and whether the tree had uncommitted changes) and the Go release.
// -ldflags values win over the build info, which a build outside git
// lacks.
func versionLine(info *debug.BuildInfo) string {
	v, rev, dirty, goVersion := version, commit, "", ""
	if commit != "" && modified == "true" {
		dirty = ", with uncommitted changes"
	}
	if info != nil {
		goVersion = info.GoVersion
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				if s.Value == "true" && commit == "" {
					dirty = ", with uncommitted changes"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	line := "stepbox " + v
	if rev != "" {
		line += ", commit " + rev + dirty
	} else {
		line += ", commit unknown (built outside a git checkout: make COMMIT=HASH names it)"
	}
	if goVersion != "" {
		line += ", " + goVersion
	}
	return strings.TrimSpace(line)
}
