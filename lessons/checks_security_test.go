package lessons

import (
	"testing"

	"stepbox/primitives"
)

const allCaps = 0x1fffeffffff // root's CapEff on the machine these were read on

// running gives the box a command started at start, with these privileges.
func (b BoxState) running(pid int, start uint64, p primitives.ProcSecurity) BoxState {
	p.PID, p.Start, p.Comm = pid, start, "sleep"
	b.Commands = append(b.Commands, p)
	return b
}

// guarded gives the box a security snapshot: Docker's paths, each masked
// or read-only when covered, and the device rules.
func (b BoxState) guarded(covered bool, devices ...string) BoxState {
	guard := map[bool]string{true: "ro", false: ""}[covered]
	s := primitives.SecuritySnapshot{Box: b.Name, Devices: primitives.DeviceList{Version: 1, Cgroup: "/sys/fs/cgroup/devices/web-1", Rules: devices}}
	for _, p := range primitives.DockerDefault.Masked {
		s.Masked = append(s.Masked, primitives.GuardedPath{Path: p, Guard: map[bool]string{true: "/dev/null", false: ""}[covered]})
	}
	for _, p := range primitives.DockerDefault.ReadOnly {
		s.ReadOnly = append(s.ReadOnly, primitives.GuardedPath{Path: p, Guard: guard})
	}
	b.Security = &s
	return b
}

func TestSecurityChecksJudgeTheNewestCommand(t *testing.T) {
	d := primitives.DockerDefault
	full := primitives.ProcSecurity{CapBnd: allCaps, CapPrm: allCaps, CapEff: allCaps}
	docker := primitives.ProcSecurity{CapBnd: d.Caps, CapPrm: d.Caps, CapEff: d.Caps, NoNewPrivs: true, Seccomp: 2, SeccompFilters: 1}
	web := fresh("web").unshare("uts", "ipc", "net", "pid", "mnt")
	for _, tc := range []struct {
		name, check string
		box         BoxState
		pass        bool
		finding     string
	}{
		{"nothing running", "caps-docker", web, false, "no-command"},
		{"the app of lesson 6", "caps-docker", web.running(4100, 10, full), false, "caps-beyond"},
		{"started again after caps docker", "caps-docker", web.running(4100, 10, full).running(4200, 20, docker), true, ""},
		{"the newest is the one started last, whatever its PID", "caps-docker", web.running(4200, 20, docker).running(300, 30, full), false, "caps-beyond"},
		{"an ambient capability Docker leaves empty", "caps-docker", web.running(4100, 10, primitives.ProcSecurity{CapAmb: 1 << 21}), false, "caps-beyond"},
		{"nnp off", "nnp", web.running(4100, 10, full), false, "nnp-off"},
		{"nnp on", "nnp", web.running(4100, 10, docker), true, ""},
		{"no filter", "seccomp-filter", web.running(4100, 10, full), false, "no-filter"},
		{"Docker's filter", "seccomp-filter", web.running(4100, 10, docker), true, ""},
		{"paths open", "paths-masked", web.guarded(false, "a *:* rwm"), false, "open-path"},
		{"paths masked", "paths-masked", web.guarded(true, "a *:* rwm"), true, ""},
		{"every device", "devices-docker", web.guarded(true, "a *:* rwm"), false, "all-devices"},
		{"a device beyond Docker's", "devices-docker", web.guarded(true, append([]string{"b 254:0 r"}, d.Devices...)...), false, "extra-device"},
		{"Docker's devices", "devices-docker", web.guarded(true, d.Devices...), true, ""},
		{"v2 rules unread", "devices-docker", web.guarded(true), false, "unread"},
		{"all as Docker's", "docker-default", web.guarded(true, d.Devices...).running(4100, 10, docker), true, ""},
		{"as Docker's but every device", "docker-default", web.guarded(true, "a *:* rwm").running(4100, 10, docker), false, "weaker"},
		{"as Docker's but the app from before", "docker-default", web.guarded(true, d.Devices...).running(4100, 10, full), false, "weaker"},
	} {
		c, err := LookupCheck(tc.check)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Run(state(tc.box), nil)
		if r.Pass != tc.pass || r.Finding != tc.finding {
			t.Errorf("%s: %s: pass %v finding %q (%s), want pass %v finding %q", tc.name, tc.check, r.Pass, r.Finding, r.Saw, tc.pass, tc.finding)
		}
	}
}

func TestHostPIDRootNeedsARootAndTheHostsPIDNamespace(t *testing.T) {
	c, _ := LookupCheck("host-pid-root")
	leaky := fresh("leaky").unshare("uts", "mnt")
	if r := c.Run(state(leaky), nil); r.Pass || r.Finding != "no-root" {
		t.Errorf("not pivoted: %+v", r)
	}
	leaky.FS.Pivoted = true
	if r := c.Run(state(leaky), nil); !r.Pass {
		t.Errorf("pivoted on the host's PID namespace: %+v", r)
	}
	web := fresh("web").unshare("pid", "mnt")
	web.FS.Pivoted = true
	if r := c.Run(state(web), nil); r.Pass || r.Finding != "own-pid" {
		t.Errorf("own PID namespace: %+v", r)
	}
}
