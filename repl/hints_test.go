package repl

import (
	"context"
	"strings"
	"testing"

	"stepbox/primitives"
)

func TestDidYouMeanNamesTyposAndNothingFar(t *testing.T) {
	cmds := commandNames(commands)
	for _, c := range []struct {
		typed string
		set   []string
		want  string
	}{
		{"unshre", cmds, "; did you mean unshare?"},
		{"unsahre", cmds, "; did you mean unshare?"}, // two letters swapped
		{"pivotroot", cmds, "; did you mean pivot_root?"},
		{"lessen", cmds, "; did you mean lesson?"},
		{"limt", []string{"new", "set", "limit", "attach", "show"}, "; did you mean limit?"},
		{"utss", primitives.NamespaceTypeNames(), "; did you mean uts?"},
		{"--them", []string{"--theme", "--plain"}, "; did you mean --theme?"},
		{"fileb", []string{"fileA", "fileB"}, "; did you mean fileB?"}, // case alone, before one edit
		{"frobnicate", cmds, ""},
		{"xz", cmds, ""},
	} {
		if got := didYouMean(c.typed, c.set); got != c.want {
			t.Errorf("didYouMean(%q) = %q, want %q", c.typed, got, c.want)
		}
	}
}

func TestUnknownWordsSayWhatWasMeant(t *testing.T) {
	sh, _ := plainShell()
	for line, want := range map[string]string{
		"unshre uts":         `unknown command "unshre"; did you mean unshare?`,
		"frobnicate":         "unknown command \"frobnicate\": `help` lists the commands",
		"cgroup limt pids 4": `unknown cgroup command "limt": use one of new, set, limit, attach, devices, show; did you mean limit?`,
		"mount overlya base": `unknown mount command "overlya": use one of overlay, proc, sys, cgroup, dev, tmpfs, bind, mask; did you mean overlay?`,
		"layer nwe base2":    "did you mean new?",
		"ls -l /proc":        "ls is a program, not a stepbox command: `!ls -l /proc` runs it on the host; `exec ls -l /proc` runs it in a box, once `new` has made one",
		"help unshre":        "did you mean unshare?",
		"stack --file":       "unknown flag --file: stack takes --files; did you mean --files?",
		"explain !touch x":   "explain !touch: a `!` line runs on the host with /bin/sh, so stepbox has no plan of it; explain takes a stepbox command",
		"explain !":          "explain !: a `!` line runs on the host",
	} {
		err := sh.Execute(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", line, err, want)
		}
	}
}

// In a box: a program runs with exec, a closed set's typo is named, and
// a full-screen program is sent to `sh`, which gives it a terminal.
func TestWrongInputInABoxLeadsSomewhere(t *testing.T) {
	needRoot(t)
	sh := newTestShell(t, "")
	ctx := context.Background()
	if err := sh.Execute(ctx, "new web"); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"cat /etc/hostname":         "cat is a program, not a stepbox command: `exec cat /etc/hostname` runs it in box web, `!cat /etc/hostname` on the host",
		"unshare utss":              `unknown namespace type "utss": use one of`,
		"unshare ut pid":            "did you mean uts?",
		"enter pdi -- true":         "did you mean pid?",
		"cgroup limit memry 64M":    "cgroup limit memry: unknown controller: use memory, pids, cpu; did you mean memory?",
		"exec top":                  "top draws the whole screen and reads keys, so it needs a terminal; exec gives none",
		"exec /usr/bin/top":         "Run it from `sh` in stepbox on a terminal; `exec top -b -n 1` prints one screen as text",
		"exec sh":                   "an interactive shell needs a terminal; exec gives none (the output is piped back to stepbox). Open one with `sh` in stepbox on a terminal",
		"exec bash -l":              "`exec bash -c 'CMD'` runs one command",
		"use wbe":                   `no box called "wbe": the boxes are web; did you mean web?`,
		"ns weeb":                   "did you mean web?",
		"rm wb":                     "did you mean web?",
		"nsenter -t 1 -u hostname":  "`exec nsenter -t 1 -u hostname` runs it in box web, `!nsenter -t 1 -u hostname` on the host; did you mean enter?",
		"mount overlay bsae":        "did you mean base?",
		"mount overlay fileA fileb": `no such layer "fileb": layers are base, fileA, fileB, motd, noissue; did you mean fileB?`,
		"mount overlay fileA filB":  "did you mean fileB?",
	} {
		err := sh.Execute(ctx, line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", line, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "fileA?") {
			t.Errorf("%s: suggests fileA, a layer already given: %v", line, err)
		}
	}
	if b := sh.Current(); len(b.Unshared()) > 0 || b.Cgroup() != nil {
		t.Errorf("refused lines changed box web: namespaces %v, cgroup %v", b.Unshared(), b.Cgroup())
	}
	// What needs no terminal still runs.
	for _, line := range []string{"exec top -b -n 1", "exec sh -c true", "unshare uts mnt pid", "mount overlay base", "pivot_root"} {
		if err := sh.Execute(ctx, line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	// In its own root, the box's PATH is the base layer's, not the host's.
	for line, want := range map[string]string{
		"cat /etc/hostname": "`exec cat /etc/hostname` runs it in box web, `!cat /etc/hostname` on the host",
		"lsns -t uts":       "`!lsns -t uts` runs it on the host (box web has no lsns on its PATH)",
	} {
		err := sh.Execute(ctx, line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("after pivot_root, %s: error %v, want it to say %q", line, err, want)
		}
	}
}
