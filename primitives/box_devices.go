package primitives

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/devices"
	"stepbox/primitives/step"
)

// DeviceVerbs are what `cgroup devices` takes.
var DeviceVerbs = []string{"show", "docker", "allow", "deny"}

// boxDevices is what `cgroup devices` gave a box on cgroup v2, where the
// kernel keeps no list: the rules, and the program they compiled to.
type boxDevices struct {
	rules []devices.Rule
	prog  ebpf.ProgramID
}

// DeviceRules is the devices cgroup of a box as the kernel has it.
type DeviceRules struct {
	Version int
	File    string         // v1: the devices.list read
	Rules   []devices.Rule // v1: devices.list; v2: the rules of the attached program
	Lines   []string       // v1: devices.list as the kernel wrote it
	Progs   []ebpf.ProgramID
}

// deviceRules parses the arguments of `cgroup devices VERB [RULE]`.
func deviceRules(verb string, rule []string) ([]devices.Rule, error) {
	cmd := strings.TrimSpace("cgroup devices " + verb + " " + strings.Join(rule, " "))
	switch verb {
	case "docker":
		if len(rule) > 0 {
			return nil, fmt.Errorf("%s: docker takes no rule", cmd)
		}
		return devices.Docker(), nil
	case "allow", "deny":
		if len(rule) == 0 {
			return nil, fmt.Errorf("%s: name a rule: %s", cmd, devices.Syntax)
		}
		r, err := devices.ParseRule(strings.Join(rule, " "), verb == "allow")
		if err != nil {
			return nil, fmt.Errorf("cgroup devices %s: %w", verb, err)
		}
		return []devices.Rule{r}, nil
	}
	return nil, fmt.Errorf("cgroup devices %s: unknown: use show, docker, allow RULE or deny RULE", verb)
}

// CgroupDevices applies `cgroup devices docker|allow RULE|deny RULE` to
// the box's cgroup: on v1, lines written to devices.deny and
// devices.allow; on v2, the box's rules so far and these compiled into
// one eBPF device program that replaces the one before.
func (b *Box) CgroupDevices(verb string, rule []string) (*step.Step, error) {
	return b.cgroupDevices(verb, rule, false)
}

// PlanCgroupDevices is the record CgroupDevices will write.
func (b *Box) PlanCgroupDevices(verb string, rule []string) (*step.Step, error) {
	return b.cgroupDevices(verb, rule, true)
}

func (b *Box) cgroupDevices(verb string, rule []string, plan bool) (*step.Step, error) {
	rules, err := deviceRules(verb, rule)
	if err != nil {
		return nil, err
	}
	h, g, err := b.needCgroup()
	if err != nil {
		return nil, fmt.Errorf("cgroup devices %s: %w", verb, err)
	}
	st := &step.Step{
		Command: strings.TrimSpace("cgroup devices " + verb + " " + strings.Join(rule, " ")),
		Man:     []string{"cgroups(7)", "Documentation/admin-guide/cgroup-v1/devices.rst"},
		Undo:    "remove the cgroup (`rm`): the rules go with it",
	}
	if h.Version() == 1 {
		err = b.devicesV1(st, g, rules, plan)
	} else {
		err = b.devicesV2(st, g, rules, plan)
	}
	if plan {
		st.MarkNotRun()
	}
	return st, err
}

// devicesV1 writes each rule to devices.deny or devices.allow of the
// box's cgroup in the devices hierarchy.
func (b *Box) devicesV1(st *step.Step, g *cgroups.Group, rules []devices.Rule, plan bool) error {
	dir, err := devicesDir(g)
	if err != nil {
		return err
	}
	st.Tell(fmt.Sprintf("wrote %s to devices.deny and devices.allow of %s: the kernel checks them on every open and mknod of a device", step.Count(len(rules), "rule"), g.Name),
		fmt.Sprintf("will write %s to devices.deny and devices.allow of %s", step.Count(len(rules), "rule"), g.Name))
	for _, r := range rules {
		file := filepath.Join(dir, "devices."+r.Verb())
		line := r.String()
		if r.Type == 'a' {
			line = "a"
		}
		st.Shell = append(st.Shell, fmt.Sprintf("echo '%s' > %s", line, file))
		call := fmt.Sprintf("write(%s, %q)", step.Quote(file), line)
		if plan {
			st.Plan(call)
			continue
		}
		if err := st.Do(call, func() error { return os.WriteFile(file, []byte(line), 0) }); err != nil {
			return fmt.Errorf("cgroup devices: %w", err)
		}
	}
	return nil
}

// devicesDir is the box's cgroup in the devices hierarchy (v1).
func devicesDir(g *cgroups.Group) (string, error) {
	for _, d := range g.Dirs {
		if slices.Contains(d.Controllers, "devices") {
			return d.Path, nil
		}
	}
	return "", fmt.Errorf("cgroup devices: cgroup %s is in no devices hierarchy: this host mounts no v1 devices controller", g.Name)
}

// devicesV2 loads the box's rules so far plus rules as one program and
// attaches it in place of the last.
func (b *Box) devicesV2(st *step.Step, g *cgroups.Group, rules []devices.Rule, plan bool) error {
	dir := g.Dirs[0].Path
	b.mu.Lock()
	all := append(slices.Clone(b.devices.rules), rules...)
	old := b.devices.prog
	b.mu.Unlock()
	insns := devices.Instructions(all)
	load := fmt.Sprintf("bpf(BPF_PROG_LOAD, {prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=%d, license=\"Apache-2.0\"})   # %s, last first", len(insns), step.Count(len(all), "rule"))
	attach := fmt.Sprintf("bpf(BPF_PROG_ATTACH, {target_fd=open(%s), attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI})", step.Quote(dir))
	detach := fmt.Sprintf("bpf(BPF_PROG_DETACH, {target_fd=open(%s), attach_type=BPF_CGROUP_DEVICE, attach_bpf_fd=the program before})", step.Quote(dir))
	st.Man = append(st.Man, "bpf(2)")
	st.Shell = append(st.Shell, fmt.Sprintf("bpftool cgroup attach %s device pinned PROG multi   # a program built from the rules", dir))
	st.Tell(fmt.Sprintf("attached an eBPF device program of %s to %s: cgroup v2 has no devices files, the kernel runs the program on every open and mknod", step.Count(len(all), "rule"), g.Name),
		fmt.Sprintf("will attach an eBPF device program of %s to %s (cgroup v2 has no devices files)", step.Count(len(all), "rule"), g.Name))
	if plan {
		st.Plan(load)
		st.Plan(attach)
		if old != 0 {
			st.Plan(detach)
		}
		return nil
	}
	prog, err := devices.Load(all)
	st.Record(load, err)
	if err != nil {
		return fmt.Errorf("cgroup devices: %w", err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("cgroup devices: bpf(BPF_OBJ_GET_INFO_BY_FD): %w", err)
	}
	id, _ := info.ID()
	// The new program first, then the old one out: in between a device
	// must pass both, never neither.
	err = devices.Attach(dir, prog, 0)
	st.Record(attach, err)
	if err != nil {
		return fmt.Errorf("cgroup devices: %w", err)
	}
	b.mu.Lock()
	b.devices = boxDevices{rules: all, prog: id}
	b.mu.Unlock()
	if old != 0 {
		err = devices.Detach(dir, old)
		st.Record(detach, err)
	}
	return err
}

// CgroupDeviceRules reads the box's device rules from the kernel: v1's
// devices.list, or on v2 the programs attached to its cgroup (with the
// rules stepbox compiled into the one it attached).
func (b *Box) CgroupDeviceRules() (DeviceRules, error) {
	h, g, err := b.needCgroup()
	if err != nil {
		return DeviceRules{}, fmt.Errorf("cgroup devices: %w", err)
	}
	if h.Version() == 1 {
		dir, err := devicesDir(g)
		if err != nil {
			return DeviceRules{}, err
		}
		d := DeviceRules{Version: 1, File: filepath.Join(dir, "devices.list")}
		f, err := os.Open(d.File)
		if err != nil {
			return d, fmt.Errorf("cgroup devices: %w", err)
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			d.Lines = append(d.Lines, s.Text())
			if r, err := devices.ParseRule(s.Text(), true); err == nil {
				d.Rules = append(d.Rules, r)
			}
		}
		return d, s.Err()
	}
	d := DeviceRules{Version: 2, File: g.Dirs[0].Path}
	if d.Progs, err = devices.Attached(d.File); err != nil {
		return d, fmt.Errorf("cgroup devices: %w", err)
	}
	b.mu.Lock()
	if slices.Contains(d.Progs, b.devices.prog) {
		d.Rules = slices.Clone(b.devices.rules)
	}
	b.mu.Unlock()
	return d, nil
}
