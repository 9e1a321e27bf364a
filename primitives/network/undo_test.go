package network

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// A ledger line names only what stepbox makes: its table, the sysctls
// the net steps change, to 0 or 1.
func TestALedgerLineNamesOnlyWhatStepboxMakes(t *testing.T) {
	for _, u := range []Undo{
		{What: UndoTable, Name: "filter"},
		{What: UndoRules, Name: "nat", Tag: "x"},
		{What: UndoSysctl, Name: "kernel.panic", Value: "1"},
		{What: UndoSysctl, Name: "net.ipv4.ip_forward", Value: "2"},
		{What: UndoSysctl, Name: "net.ipv4.conf.../../x.route_localnet", Value: "1"},
		{What: UndoLink, Name: "a/b"},
		{What: UndoChain, Name: Table, Tag: "forward"},
		{What: UndoChain, Name: "filter", Tag: "trace_from_box"},
		{What: UndoConntrack, Name: "0.0.0.0/0"},
		{What: UndoConntrack, Name: "192.0.2.0/24"},
		{What: UndoConntrack, Name: "10.0.0.0/8"},
		{What: UndoConntrack, Name: "172.20.0.1/32"},
	} {
		if err := u.Do(NewOwner("1-2", nil)); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("%+v: %v, want a refusal", u, err)
		}
	}
	for _, u := range []Undo{
		{What: UndoSysctl, Name: "net.ipv4.ip_forward", Value: "0"},
		{What: UndoSysctl, Name: "net.ipv4.conf.stepbox0.route_localnet", Value: "1"},
		{What: UndoTable, Name: Table},
		{What: UndoChain, Name: Table, Tag: "trace_output"},
		{What: UndoConntrack, Name: "172.20.0.0/24"},
		{What: UndoConntrack, Name: "10.99.0.0/16"},
	} {
		if err := u.valid(); err != nil {
			t.Errorf("%+v: %v", u, err)
		}
	}
}

// A planted ledger line that names a link stepbox did not make (no
// alias "stepbox") leaves it in place: proved on a decoy in a network
// namespace the test makes.
func TestAPlantedLinkLineLeavesTheLinkInPlace(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	ns := decoyNS(t)
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "decoy0"}}); err != nil {
		t.Fatal(err)
	}
	err = Undo{What: UndoLink, NS: ns, Name: "decoy0"}.Do(NewOwner("1-2", nil))
	if err == nil || !strings.Contains(err.Error(), "left in place") {
		t.Errorf("undo of a link stepbox did not make: %v", err)
	}
	if _, err := h.LinkByName("decoy0"); err != nil {
		t.Errorf("the decoy link is gone: %v", err)
	}
}

// decoyNS is a network namespace the test makes, held by a sleep.
func decoyNS(t *testing.T) NS {
	t.Helper()
	holder := exec.Command("unshare", "--net", "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	path := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net"
	var ns NS
	for i := 0; i < 100; i++ { // until unshare has run
		self, _ := os.Readlink("/proc/self/ns/net")
		if l, _ := os.Readlink(path); l != "" && l != self {
			var err error
			if ns, err = NSAt(path); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ns.Path == "" {
		t.Fatal("the decoy namespace never appeared")
	}
	return ns
}

// A link that vanishes between teardown's lookup and its delete (a veth
// whose peer's namespace the kernel is freeing) counts as deleted: the
// race failed a teardown in the cgroup-v2 VM.
func TestALinkGoneBeforeItsDeleteCountsAsDeleted(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	ns := decoyNS(t)
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "gone0"}}); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName("gone0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if err := delLink(h, l); err != nil {
		t.Errorf("deleting a link already gone: %v", err)
	}
}
