package repl

import (
	"context"
	"strings"
	"testing"
)

// The shell's probe, mount mask and cgroup devices on the lesson-6 box:
// the probe table names each hole and what closes it, and bad input is
// refused naming the command, the argument and what is allowed.
func TestShellProbesTheBoxAndRefusesBadInput(t *testing.T) {
	sh, out := liveShell(t)
	for _, line := range []string{
		"new web", "unshare uts ipc net pid mnt", "mount overlay base", "pivot_root",
		"mount dev", "mount sys", "cgroup new", "cgroup attach",
	} {
		if err := sh.Execute(context.Background(), line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "probe proc_sys kallsyms"); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"proc_sys", "kallsyms", "open", "mount mask"} {
		if !strings.Contains(table, want) {
			t.Errorf("probe table lacks %q:\n%s", want, table)
		}
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "probe older_processes"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"older_processes", "closed", "stepbox's executor"} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), want) {
			t.Errorf("probe older_processes lacks %q:\n%s", want, out.String())
		}
	}
	for line, want := range map[string]string{
		"probe nosuch":                     `probe nosuch: unknown probe "nosuch": known probes are disk, proc_root`,
		"cgroup devices allow c 1:3 rwx":   `cgroup devices allow: device rule "c 1:3 rwx": access rwx; want TYPE MAJOR:MINOR ACCESS`,
		"cgroup devices deny q":            `cgroup devices deny: device rule "q": 1 words`,
		"cgroup devices frob":              `cgroup devices: unknown devices command "frob": use one of show, docker, allow, deny`,
		"cgroup devices allow c 1:3 r w m": `cgroup devices allow: unexpected argument "w": usage: cgroup devices allow TYPE MAJOR:MINOR ACCESS`,
	} {
		err := sh.Execute(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to say %q", line, err, want)
		}
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "mount mask"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "the box before → after") || !strings.Contains(out.String(), "/proc/sys") {
		t.Errorf("mount mask shows no before/after of the mount table:\n%s", out.String())
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "probe proc_sys"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "closed") {
		t.Errorf("proc_sys after mount mask:\n%s", out.String())
	}
}
