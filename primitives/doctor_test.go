package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// doctorFixture is a host tree under a temp dir holding files (path →
// contents; a path ending in / is a directory), read as learner alice,
// uid 1000, who ran `sudo stepbox` on Linux release.
func doctorFixture(t *testing.T, release string, files map[string]string) DoctorHost {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return DoctorHost{Root: root, Release: release, PID: 1, EUID: 0, UID: 1000, User: "alice"}
}

// wantCheck asserts c's verdict, that a failing line says what to do, and
// that its text holds each of want.
func wantCheck(t *testing.T, c Check, ok bool, want ...string) {
	t.Helper()
	if c.OK != ok {
		t.Errorf("%s: OK %v, want %v: %+v", c.Name, c.OK, ok, c)
	}
	if !c.OK && c.Advice == "" {
		t.Errorf("%s fails without saying what to do: %+v", c.Name, c)
	}
	for _, w := range want {
		if !strings.Contains(c.Found+" | "+c.Advice, w) {
			t.Errorf("%s: %q not in %+v", c.Name, w, c)
		}
	}
}

func TestDoctorNamesTheSysctlThatLetsANormalUserMakeUserNamespaces(t *testing.T) {
	ubuntu := doctorFixture(t, "6.8.0-45-generic", map[string]string{
		"proc/sys/user/max_user_namespaces":                     "63379\n",
		"proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n",
	})
	wantCheck(t, ubuntu.checkUserNamespaces(), true, "63379")
	wantCheck(t, ubuntu.checkRootlessUserNamespaces(), false, "AppArmor", "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")

	oldDebian := doctorFixture(t, "5.10.0-30-amd64", map[string]string{
		"proc/sys/user/max_user_namespaces":         "15000\n",
		"proc/sys/kernel/unprivileged_userns_clone": "0\n",
	})
	wantCheck(t, oldDebian.checkRootlessUserNamespaces(), false, "sudo sysctl -w kernel.unprivileged_userns_clone=1")

	off := doctorFixture(t, "6.1.0", map[string]string{"proc/sys/user/max_user_namespaces": "0\n"})
	wantCheck(t, off.checkUserNamespaces(), false, "sudo sysctl -w user.max_user_namespaces=15000")
	wantCheck(t, off.checkRootlessUserNamespaces(), false, "user.max_user_namespaces")

	open := doctorFixture(t, "6.1.0", map[string]string{
		"proc/sys/user/max_user_namespaces":                     "15000\n",
		"proc/sys/kernel/apparmor_restrict_unprivileged_userns": "0\n",
	})
	wantCheck(t, open.checkRootlessUserNamespaces(), true)
}

func TestDoctorGivesTheLearnerAFreeSubordinateRange(t *testing.T) {
	h := doctorFixture(t, "6.1.0", map[string]string{
		"etc/subuid": "bob:100000:65536\ncarol:165536:65536\n",
		"etc/subgid": "bob:100000:65536\nalice:165536:1000\n",
	})
	// Above carol's range (ends at 231072), rounded up to 65536s.
	wantCheck(t, h.checkSubordinateIDs(), false, "alice has no range", "/etc/subuid and /etc/subgid",
		"sudo usermod --add-subuids 262144-327679 --add-subgids 262144-327679 alice")

	byUID := doctorFixture(t, "6.1.0", map[string]string{
		"etc/subuid": "1000:100000:65536\n",
		"etc/subgid": "alice:100000:65536\n",
	})
	wantCheck(t, byUID.checkSubordinateIDs(), true, "65536 IDs from 100000")

	none := doctorFixture(t, "6.1.0", nil)
	wantCheck(t, none.checkSubordinateIDs(), false, "--add-subuids 100000-165535")

	bad := doctorFixture(t, "6.1.0", map[string]string{"etc/subuid": "alice:x:65536\n"})
	wantCheck(t, bad.checkSubordinateIDs(), false, "bad line")
}

func TestDoctorSaysHowToInstallNewuidmapOnThisDistribution(t *testing.T) {
	debian := doctorFixture(t, "6.1.0", map[string]string{"etc/os-release": "ID=ubuntu\nID_LIKE=debian\n"})
	wantCheck(t, debian.checkIDMapTools(), false, "no newuidmap, newgidmap", "sudo apt install uidmap")
	fedora := doctorFixture(t, "6.1.0", map[string]string{"usr/lib/os-release": "ID=fedora\n", "usr/bin/newuidmap": ""})
	wantCheck(t, fedora.checkIDMapTools(), false, "no newgidmap", "sudo dnf install shadow-utils")
	both := doctorFixture(t, "6.1.0", map[string]string{"usr/bin/newuidmap": "", "usr/bin/newgidmap": ""})
	wantCheck(t, both.checkIDMapTools(), true)
}

func TestDoctorSaysWhichControllersTheUserManagerDelegates(t *testing.T) {
	svc := "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers"
	systemdV2 := map[string]string{"sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n", "run/systemd/system/": ""}

	partial := doctorFixture(t, "6.1.0", merge(systemdV2, map[string]string{svc: "memory pids\n"}))
	wantCheck(t, partial.checkDelegation(), false, "user@1000.service delegates: memory pids", "also need cpu",
		"/etc/systemd/system/user@.service.d/delegate.conf", "Delegate=cpu cpuset io memory pids", "daemon-reload")

	full := doctorFixture(t, "6.1.0", merge(systemdV2, map[string]string{svc: "cpu memory pids\n"}))
	wantCheck(t, full.checkDelegation(), true, "delegates: cpu memory pids")

	noSession := doctorFixture(t, "6.1.0", systemdV2)
	wantCheck(t, noSession.checkDelegation(), false, "no user manager (user@1000.service)", "sudo loginctl enable-linger alice")

	hybrid := doctorFixture(t, "6.1.0", map[string]string{"run/systemd/system/": "", "sys/fs/cgroup/memory/": ""})
	wantCheck(t, hybrid.checkDelegation(), false, "cgroup v1", "systemd.unified_cgroup_hierarchy=1")

	noSystemd := doctorFixture(t, "6.1.0", map[string]string{"sys/fs/cgroup/cgroup.controllers": "cpu memory pids\n"})
	wantCheck(t, noSystemd.checkDelegation(), false, "no systemd user manager", "sudo stepbox")
}

func TestDoctorSaysWhereSystemdStartedStepbox(t *testing.T) {
	h := doctorFixture(t, "6.1.0", map[string]string{
		"run/systemd/system/": "",
		"proc/1/cgroup":       "0::/user.slice/user-1000.slice/session-4.scope\n",
	})
	wantCheck(t, h.checkSystemd(), true, "PID 1", "starts in /user.slice/user-1000.slice/session-4.scope")
	wantCheck(t, doctorFixture(t, "6.1.0", nil).checkSystemd(), true, "not PID 1")
}

func TestDoctorNamesTheKernelEachFeatureNeeds(t *testing.T) {
	ns := map[string]string{"proc/1/ns/time": ""}
	old := doctorFixture(t, "5.4.0-200-generic", ns)
	wantCheck(t, old.checkKernel(), false, "Linux 5.11")
	wantCheck(t, old.checkTimeNamespace(), false, "Linux 5.6")
	wantCheck(t, old.checkRootlessOverlay(), false, "Linux 5.11")

	// 5.10 has time namespaces; the executor does not need 6.3's fix.
	bullseye := doctorFixture(t, "5.10.0-30-amd64", ns)
	wantCheck(t, bullseye.checkTimeNamespace(), true)
	wantCheck(t, bullseye.checkRootlessOverlay(), false, "overlay in a user namespace needs Linux 5.11")

	noTimeNS := doctorFixture(t, "6.1.0", nil)
	wantCheck(t, noTimeNS.checkTimeNamespace(), false, "CONFIG_TIME_NS")
	wantCheck(t, doctorFixture(t, "6.1.0", ns).checkRootlessOverlay(), true, "userxattr")
}

func TestDoctorFindsNftablesBuiltInLoadedOrAsAModule(t *testing.T) {
	loaded := doctorFixture(t, "6.1.0", map[string]string{"sys/module/nf_tables/": "", "usr/sbin/nft": ""})
	wantCheck(t, loaded.checkNftables(), true, "nf_tables loaded", "/usr/sbin/nft")
	module := doctorFixture(t, "6.1.0", map[string]string{
		"lib/modules/6.1.0/kernel/net/netfilter/nf_tables.ko.xz": "", "usr/sbin/nft": "",
	})
	wantCheck(t, module.checkNftables(), true, "loaded on first use")
	noNft := doctorFixture(t, "6.1.0", map[string]string{"sys/module/nf_tables/": "", "etc/os-release": "ID=debian\n"})
	wantCheck(t, noNft.checkNftables(), false, "no nft command", "sudo apt install nftables")
	none := doctorFixture(t, "6.1.0", nil)
	wantCheck(t, none.checkNftables(), false, "sudo modprobe nf_tables")

	// Built in without parameters: no file shows it, the kernel answers.
	builtIn := doctorFixture(t, "6.1.0", map[string]string{"usr/sbin/nft": ""})
	builtIn.NftProbe = func() error { return nil }
	wantCheck(t, builtIn.checkNftables(), true, "nf_tables answers")
	// Without CAP_NET_ADMIN the kernel cannot be asked: the files decide.
	builtIn.NftProbe = func() error { return fmt.Errorf("netlink receive: %w", unix.EPERM) }
	wantCheck(t, builtIn.checkNftables(), false, "only root may ask", "sudo stepbox doctor")
	module.NftProbe = builtIn.NftProbe
	wantCheck(t, module.checkNftables(), true, "loaded on first use")
	builtIn.NftProbe = func() error { return fmt.Errorf("netlink receive: %w", unix.EOPNOTSUPP) }
	wantCheck(t, builtIn.checkNftables(), false, "does not answer", "sudo modprobe nf_tables")
}

// On this machine, every line doctor prints either passes or names what
// to do, and doctor reads without changing anything it reads.
func TestDoctorOnThisHostSaysWhatToDoForEveryFailure(t *testing.T) {
	checks := Doctor()
	if want := len(DoctorChecks) + len(rootlessChecks); len(checks) != want {
		t.Fatalf("%d checks for %d check functions", len(checks), want)
	}
	for _, c := range checks {
		if c.Name == "" || c.Found == "" {
			t.Errorf("a check without a name or a finding: %+v", c)
		}
		// doctor_cgroup.go's parent check reports a cgroup tree it cannot
		// read without advice; its placement advice is issue 19's item 1.
		if !c.OK && c.Advice == "" && c.Name != "cgroup parent" {
			t.Errorf("%s fails without saying what to do: %+v", c.Name, c)
		}
	}
	h := LiveDoctorHost()
	if want := KernelRelease(); h.Release != want || h.Root != "/" {
		t.Errorf("the live host: %+v, want release %s at /", h, want)
	}
	// The net tests need nf_tables and nft on every machine they run on.
	if nft := h.checkNftables(); os.Geteuid() == 0 && !nft.OK {
		t.Errorf("as root here, nftables: %+v", nft)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// A learner without sudo (uid 65534 on a hybrid host, no subuid range) is
// told what to ask an administrator for and what works meanwhile, never a
// bare sudo line; nftables, which no rootless step uses, and a cgroup
// parent nobody delegates are neither OK nor failures (ut26 F1).
func TestDoctorToALearnerWithoutSudoSaysWhatToAskForAndWhatWorksMeanwhile(t *testing.T) {
	h := doctorFixture(t, "6.1.0", map[string]string{"etc/os-release": "ID=debian\n", "usr/bin/newuidmap": ""})
	h.EUID, h.UID, h.User = 65534, 65534, "nobody"
	h.NftProbe = func() error { return unix.EPERM }
	checks := h.forLearner([]Check{h.checkRoot(), h.checkNftables(), h.checkSubordinateIDs(), h.checkIDMapTools(), h.checkDelegation(),
		{Name: "cgroup parent", OK: true, Found: "under /process_api/x (rule session)"}})
	byName := map[string]Check{}
	for _, c := range checks {
		byName[c.Name] = c
		if !c.OK && !c.Moot && !strings.HasPrefix(c.Advice, "needs root: ask your administrator") {
			t.Errorf("%s: a learner without sudo is told %q", c.Name, c.Advice)
		}
	}
	wantCheck(t, byName["privileges"], true, "uid 65534, not root: stepbox runs rootless")
	for _, name := range []string{"nftables", "cgroup parent"} {
		if c := byName[name]; !c.Moot || c.OK || !strings.Contains(c.Found, "rootless") {
			t.Errorf("%s rootless: %+v, want not needed, saying why", name, c)
		}
	}
	wantCheck(t, byName["rootless: subuid"], false, "sudo usermod --add-subuids", "meanwhile: the boxes work, each mapping one ID")
	wantCheck(t, byName["rootless: uidmap"], false, "sudo apt install uidmap", "meanwhile:")
	wantCheck(t, byName["rootless: cgroups"], false, "sudo update-grub", "meanwhile: the cgroup steps are refused rootless")
	// As root (sudo), the same host's lines keep their commands as they are.
	h.EUID = 0
	if c := h.forLearner([]Check{h.checkSubordinateIDs()})[0]; !strings.HasPrefix(c.Advice, "sudo usermod") {
		t.Errorf("under sudo, subuid advice: %q", c.Advice)
	}
}
