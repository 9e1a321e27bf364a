package primitives

import (
	"fmt"
	"slices"
	"strings"
)

// rootlessControllers are the controllers stepbox's limits use (cgroup
// limit memory|pids|cpu): a user manager must delegate them for a
// rootless box to have those limits.
var rootlessControllers = []string{"cpu", "memory", "pids"}

// delegateDropIn is the one command that makes every user manager
// delegate them (systemd.resource-control(5), Delegate=): the learner
// logs in again afterwards.
const delegateDropIn = `sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\nDelegate=cpu cpuset io memory pids\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload (then log out and in)`

// checkSystemd: is systemd PID 1 (sd_booted(3): /run/systemd/system
// exists), and which of its cgroups does stepbox start in?
func (h DoctorHost) checkSystemd() Check {
	where := ""
	if cg, ok := h.read(fmt.Sprintf("/proc/%d/cgroup", h.PID)); ok {
		for _, line := range strings.Split(cg, "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				where = "; stepbox starts in " + p
			}
		}
	}
	if !h.exists("/run/systemd/system") {
		return Check{Name: "systemd", Found: "not PID 1: stepbox finds its cgroups' place itself" + where, OK: true}
	}
	return Check{Name: "systemd", Found: "PID 1, which owns the cgroup tree" + where, OK: true}
}

// checkDelegation: the controllers the learner's user manager may hand
// to their own cgroups (user@UID.service's cgroup.controllers), which is
// all a rootless box's limits can use.
// delegationCheck names checkDelegation's line.
const delegationCheck = "rootless: cgroups"

// cgroupStepsRefused is what works while no cgroup is delegated.
const cgroupStepsRefused = "the cgroup steps are refused rootless, each saying why; every other step works"

func (h DoctorHost) checkDelegation() Check {
	const name = delegationCheck
	if !h.exists("/sys/fs/cgroup/cgroup.controllers") {
		return Check{Name: name, Found: "the controllers are on cgroup v1 (hybrid or v1 host): no cgroup is delegated to a normal user", OK: false,
			Advice:    "boot with cgroup v2 only: add systemd.unified_cgroup_hierarchy=1 to GRUB_CMDLINE_LINUX in /etc/default/grub, then sudo update-grub and reboot",
			Meanwhile: cgroupStepsRefused}
	}
	if h.UID == 0 {
		return Check{Name: name, Found: "running as root without sudo: stepbox makes its cgroups as root; delegation matters for a normal user", OK: true}
	}
	if !h.exists("/run/systemd/system") {
		return Check{Name: name, Found: "no systemd user manager delegates a cgroup to " + h.User, OK: false,
			Advice: "the cgroup steps need root here: sudo stepbox", Meanwhile: cgroupStepsRefused}
	}
	svc := fmt.Sprintf("user@%d.service", h.UID)
	ctrl, ok := h.read(fmt.Sprintf("/sys/fs/cgroup/user.slice/user-%d.slice/%s/cgroup.controllers", h.UID, svc))
	if !ok {
		return Check{Name: name, Found: fmt.Sprintf("%s has no user manager (%s): no login session", h.User, svc), OK: false,
			Advice: "sudo loginctl enable-linger " + h.User, Meanwhile: cgroupStepsRefused}
	}
	have := strings.Fields(ctrl)
	var missing []string
	for _, c := range rootlessControllers {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	found := fmt.Sprintf("%s delegates: %s", svc, strings.Join(have, " "))
	if len(have) == 0 {
		found = svc + " delegates no controller"
	}
	if len(missing) > 0 {
		return Check{Name: name, Found: found + "; a rootless box's limits also need " + strings.Join(missing, " "), OK: false,
			Advice: delegateDropIn}
	}
	return Check{Name: name, Found: found, OK: true}
}
