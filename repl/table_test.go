package repl

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"stepbox/viz"
)

// walkCommands visits every command and sub-command of the table.
func walkCommands(fn func(c *Command)) {
	var walk func(list []*Command)
	walk = func(list []*Command) {
		for _, c := range list {
			fn(c)
			walk(c.Sub)
		}
	}
	walk(commands)
}

// kernelGroups are the stages whose commands touch the kernel.
var kernelGroups = map[string]bool{"box": true, "namespaces": true, "filesystem": true, "cgroups": true, "processes": true, "security": true}

func TestEveryCommandHasUsageSummaryAndAGroup(t *testing.T) {
	known := map[string]bool{}
	for _, g := range groups {
		known[g.name] = true
	}
	walkCommands(func(c *Command) {
		if c.Usage == "" || c.Summary == "" {
			t.Errorf("%s: usage %q, summary %q: both are needed by help and completion", c.path(), c.Usage, c.Summary)
		}
		if !known[c.Group] {
			t.Errorf("%s: group %q is not one of help's stages", c.path(), c.Group)
		}
		if c.Run == nil && len(c.Sub) == 0 {
			t.Errorf("%s: nothing to run", c.path())
		}
	})
}

func TestHelpOfEveryKernelCommandSaysWhatTheKernelDoesWithAnExampleAndManPage(t *testing.T) {
	walkCommands(func(c *Command) {
		if !kernelGroups[c.Group] {
			return
		}
		if c.Kernel == "" || c.Example == "" || c.Man == "" {
			t.Errorf("%s: kernel %q, example %q, man %q: `help %s` needs all three", c.path(), c.Kernel, c.Example, c.Man, c.path())
		}
	})
}

// planned lists the commands that change the kernel: each must have a
// plan for `explain CMD`.
var plannedCommands = []string{
	"new", "unshare", "hostname",
	"mount overlay", "mount proc", "mount sys", "mount cgroup", "mount dev", "mount tmpfs", "mount bind", "mount mask", "pivot_root", "chroot",
	"cgroup new", "cgroup set", "cgroup limit", "cgroup attach",
	"cgroup devices docker", "cgroup devices allow", "cgroup devices deny", "probe",
	"layer new", "layer put", "layer del", "layer rm",
	"exec", "sh", "enter",
	"caps docker", "caps drop", "caps keep", "nnp", "nnp on", "nnp off", "seccomp docker", "seccomp deny", "seccomp off",
}

func TestEveryCommandThatChangesTheKernelHasAPlan(t *testing.T) {
	for _, name := range plannedCommands {
		c, _, err := lookup(strings.Fields(name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.Plan == nil {
			t.Errorf("%s changes the kernel but has no plan: `explain %s` could not show its record", name, name)
		}
	}
}

// plainShell is a shell with no session, for what needs none.
func plainShell() (*Shell, *bytes.Buffer) {
	var out bytes.Buffer
	sh := NewShell(nil, &out, &out, viz.NewTheme("plain"), 80)
	return sh, &out
}

func TestHelpListsTheCommandsByStage(t *testing.T) {
	sh, out := plainShell()
	if err := sh.Execute(context.Background(), "help"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	last := -1
	for _, title := range []string{"Boxes", "Namespaces", "Filesystem", "cgroups", "Processes", "Session"} {
		i := strings.Index(text, "\n"+title+"\n")
		if i < 0 && strings.HasPrefix(text, title+"\n") {
			i = 0
		}
		if i < 0 {
			t.Fatalf("help has no %s section:\n%s", title, text)
		}
		if i < last {
			t.Errorf("help lists %s out of stage order:\n%s", title, text)
		}
		last = i
	}
	for _, want := range []string{"unshare TYPE…", "pivot_root", "cgroup new|set|limit|attach|show", "explain [on|off|CMD…]"} {
		if !strings.Contains(text, want) {
			t.Errorf("help lacks %q:\n%s", want, text)
		}
	}
}

func TestHelpOfACommandGivesUsageKernelExampleAndManPage(t *testing.T) {
	sh, out := plainShell()
	if err := sh.Execute(context.Background(), "help pivot_root"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pivot_root\n", "kernel:", "pivot_root(\".\", \".\")", "example: pivot_root", "man:     pivot_root(2)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help pivot_root lacks %q:\n%s", want, out)
		}
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "help cgroup limit"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cgroup limit memory|pids|cpu VALUE") {
		t.Errorf("help of a sub-command lacks its usage:\n%s", out)
	}
	// Three words of commands, then the command's own arguments.
	out.Reset()
	if err := sh.Execute(context.Background(), "help cgroup devices allow c 1:3 rwm"); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasPrefix(first, "cgroup devices allow ") {
		t.Errorf("help cgroup devices allow … starts %q, want that command's usage:\n%s", first, out)
	}
	// A word that is no sub-command of a family that takes no arguments.
	err := sh.Execute(context.Background(), "help cgroup devics")
	if err == nil || !strings.Contains(err.Error(), `unknown cgroup command "devics"`) || !strings.Contains(err.Error(), "devices") {
		t.Errorf("help cgroup devics: %v, want the unknown sub-command named and devices offered", err)
	}
	// A family: what it is, and each of its commands.
	for _, fam := range []string{"image", "export"} {
		out.Reset()
		if err := sh.Execute(context.Background(), "help "+fam); err != nil {
			t.Fatalf("help %s: %v", fam, err)
		}
		for _, want := range map[string][]string{"image": {"image load PATH [NAME]", "image rm IMAGE", "kernel:"}, "export": {"export bundle DIR", "export script FILE"}}[fam] {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help %s lacks %q:\n%s", fam, want, out)
			}
		}
	}
}

func TestBadInputSaysCommandArgumentAndWhatIsAllowed(t *testing.T) {
	sh, _ := plainShell()
	for line, want := range map[string]string{
		"frobnicate":          `unknown command "frobnicate"`,
		"cgroup frob":         `cgroup: unknown cgroup command "frob": use one of new, set, limit, attach, devices, show`,
		"mount":               "what should mount do? one of: overlay, proc, sys, cgroup, dev, tmpfs, bind, mask",
		"new a b":             `new: unexpected argument "b": usage: new [NAME] [--user]`,
		"new --usr":           "unknown flag --usr: new takes --user",
		"unshare uts":         "unshare: there is no box yet",
		"explain unshare uts": "unshare works on a box, and there is none yet",
		"explain ns":          "ns writes no step record to plan",
		"help frob":           `unknown command "frob"`,
	} {
		err := sh.Execute(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", line, err, want)
		}
	}
}
