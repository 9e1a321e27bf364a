package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// fullContainer is the full container of issue 7 as a stepbox script;
// runc, bwrap and unshare get the same rootfs, namespaces and limits.
const fullContainer = `new c
unshare uts ipc net pid mnt
mount overlay base fileA
pivot_root
mount proc
cgroup new
cgroup limit pids 64
cgroup limit memory 64M
cgroup attach
exec true
`

// namespaceScript is issue 2's script: its reference is
// `unshare -m -u -i -n -p -C -f true`.
const namespaceScript = `new c
unshare uts ipc net pid mnt cgroup
hostname box
exec true
rm c
`

// fixture is what the commands compared share: stepbox's state dir (its
// base layer built), the same tree as an OCI bundle, and the scripts.
type fixture struct {
	c                config
	state, rootfs    string
	bundle, runcRoot string
	full, namespaces string
}

func prepare(c config) (*fixture, error) {
	fx := &fixture{c: c, state: filepath.Join(c.work, "state"), bundle: filepath.Join(c.work, "bundle"), runcRoot: filepath.Join(c.work, "runc")}
	fx.full = filepath.Join(c.work, "full.sb")
	fx.namespaces = filepath.Join(c.work, "namespaces.sb")
	if err := os.WriteFile(fx.full, []byte(fullContainer+"rm c\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(fx.namespaces, []byte(namespaceScript), 0o644); err != nil {
		return nil, err
	}
	// One run builds the layers (base from busybox-static) in the state dir.
	if out, err := exec.Command(c.stepbox, "--state-dir", fx.state, "run", fx.full).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("stepbox run %s: %v\n%s", fx.full, err, out)
	}
	layers := filepath.Join(fx.state, "lib", "layers")
	if err := os.MkdirAll(fx.bundle, 0o755); err != nil {
		return nil, err
	}
	// The tree the box sees through its overlay: base, then fileA on top.
	fx.rootfs = filepath.Join(fx.bundle, "rootfs")
	for _, l := range []string{"base", "fileA"} {
		src := filepath.Join(layers, l, "root") + "/."
		if out, err := exec.Command("cp", "-a", src, fx.rootfs).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp -a %s: %v\n%s", src, err, out)
		}
	}
	if err := fx.runcSpec(); err != nil {
		return nil, err
	}
	return fx, nil
}

// runcSpec writes config.json with `runc spec`, then makes it the full
// container's: namespaces uts ipc net pid mnt (no cgroup namespace), a
// writable root (base and fileA copied, the tree the box's overlay
// shows), /proc and /dev only, no masked or read-only paths (stepbox
// makes none), no hostname (the script sets none), pids.max 64, a 64M
// memory limit, `true` as the process. runc still does what it always
// does and the script does not: a tmpfs /dev with its device nodes, the
// device cgroup's rules, capabilities, no_new_privs and rlimits; stepbox
// does what runc leaves to its caller: the overlay and its tmpfs, and its
// own ledger and tracking cgroup.
func (fx *fixture) runcSpec() error {
	cmd := exec.Command("runc", "spec")
	cmd.Dir = fx.bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(fx.bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("runc spec: %s: %w", path, err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"true"}
	spec["root"] = map[string]any{"path": "rootfs", "readonly": false}
	// The script sets no hostname: neither does runc (a new UTS
	// namespace keeps the host's name).
	delete(spec, "hostname")
	var mounts []any
	for _, m := range spec["mounts"].([]any) {
		if d := m.(map[string]any)["destination"]; d == "/proc" || d == "/dev" {
			mounts = append(mounts, m)
		}
	}
	spec["mounts"] = mounts
	linux := spec["linux"].(map[string]any)
	var nss []any
	for _, t := range []string{"pid", "network", "ipc", "uts", "mount"} {
		nss = append(nss, map[string]any{"type": t})
	}
	linux["namespaces"] = nss
	delete(linux, "maskedPaths")
	delete(linux, "readonlyPaths")
	res, _ := linux["resources"].(map[string]any)
	if res == nil {
		res = map[string]any{}
	}
	res["pids"] = map[string]any{"limit": 64}
	res["memory"] = map[string]any{"limit": 64 << 20}
	linux["resources"] = res
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// command is one command hyperfine times.
type command struct{ name, cmd string }

func (fx *fixture) fullCommands() []command {
	return []command{
		{"stepbox run", fmt.Sprintf("%s --state-dir %s run %s", fx.c.stepbox, fx.state, fx.full)},
		// $$ (the shell hyperfine starts) makes each container id unique.
		{"runc run", fmt.Sprintf("runc --root %s run --bundle %s bench$$", fx.runcRoot, fx.bundle)},
		{"bwrap", fmt.Sprintf("bwrap --unshare-all --bind %s / --proc /proc --dev /dev true", fx.rootfs)},
		{"unshare", "unshare -m -u -i -n -p -f true"},
	}
}

func (fx *fixture) namespaceCommands() []command {
	return []command{
		{"stepbox run", fmt.Sprintf("%s --state-dir %s run %s", fx.c.stepbox, fx.state, fx.namespaces)},
		{"unshare", "unshare -m -u -i -n -p -C -f true"},
	}
}

// cleanup deletes any runc container a failed run left, and whatever a
// stepbox session left in the state dir.
func (fx *fixture) cleanup() {
	out, _ := exec.Command("runc", "--root", fx.runcRoot, "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", fx.runcRoot, "delete", "-f", id).Run()
	}
	exec.Command(fx.c.stepbox, "--state-dir", fx.state, "cleanup").Run()
}
