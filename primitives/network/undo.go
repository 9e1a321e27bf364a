package network

import (
	"errors"
	"fmt"
	"net"
	"regexp"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Undo is how one network resource is removed: written to the box's or
// the session's ledger before the resource is made, and carried out by
// teardown and by the sweep after a crash.
type Undo struct {
	What  string `json:"what"` // "link", "table", "chain", "rules", "sysctl", "conntrack"
	NS    NS     `json:"ns"`
	Name  string `json:"name"`            // link, table or sysctl name; conntrack: the subnet
	Tag   string `json:"tag,omitempty"`   // rules: the comment that marks them; chain: its name
	Value string `json:"value,omitempty"` // sysctl: the value to restore
}

// Undo kinds.
const (
	UndoLink      = "link"
	UndoTable     = "table"
	UndoChain     = "chain"
	UndoRules     = "rules"
	UndoSysctl    = "sysctl"
	UndoConntrack = "conntrack"
)

// LinkAlias marks the links stepbox makes (IFLA_IFALIAS): teardown and
// the sweep delete a link only when it carries it, whatever a ledger says.
const LinkAlias = "stepbox"

// sysctlRule is what a ledger may restore: the sysctls the net steps
// change, to 0 or 1.
var sysctlRule = regexp.MustCompile(`^net\.ipv4\.(ip_forward|conf\.[a-zA-Z0-9_-]{1,15}\.route_localnet)$`)

// valid refuses a ledger line that names something stepbox never makes:
// a ledger is a file, and a file can be planted.
func (u Undo) valid() error {
	switch u.What {
	case UndoLink:
		return ValidLinkName(u.Name)
	case UndoTable, UndoRules, UndoChain:
		if u.Name != Table {
			return fmt.Errorf("nft table %q is not stepbox's (%s)", u.Name, Table)
		}
		if u.What == UndoChain && !isTraceChain(u.Tag) {
			return fmt.Errorf("nft chain %q of table %s is none that a trace adds", u.Tag, Table)
		}
	case UndoConntrack:
		return validFlowSubnet(u.Name)
	case UndoSysctl:
		if !sysctlRule.MatchString(u.Name) || (u.Value != "0" && u.Value != "1") {
			return fmt.Errorf("sysctl %s=%q is none that stepbox changes", u.Name, u.Value)
		}
	}
	return nil
}

// Do carries out the undo. A namespace or object already gone counts as
// undone: it went with the box's namespace, or an earlier try.
func (u Undo) Do() error {
	if err := u.valid(); err != nil {
		return fmt.Errorf("ledger: refusing to undo: %w", err)
	}
	err := u.do()
	if errors.Is(err, ErrNSGone) {
		return nil
	}
	return err
}

func (u Undo) do() error {
	switch u.What {
	case UndoLink:
		h, err := u.NS.Handle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName(u.Name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
			return fmt.Errorf("RTM_GETLINK %s: %w", u.Name, err)
		}
		if l.Attrs().Alias != LinkAlias {
			return fmt.Errorf("ledger: link %s has no alias %q, so stepbox did not make it: left in place", u.Name, LinkAlias)
		}
		return delLink(h, l)
	case UndoTable:
		c, err := u.NS.Nft()
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		if _, err := c.ListTableOfFamily(u.Name, nftables.TableFamilyIPv4); err != nil {
			return nil // no such table
		}
		c.DelTable(&nftables.Table{Name: u.Name, Family: nftables.TableFamilyIPv4})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("NFT_MSG_DELTABLE ip %s (nft delete table ip %s): %w", u.Name, u.Name, err)
		}
		return nil
	case UndoChain:
		return delChains(u.NS, u.Tag)
	case UndoRules:
		return delTagged(u.NS, u.Name, u.Tag)
	case UndoConntrack:
		_, subnet, _ := net.ParseCIDR(u.Name)
		return DeleteFlows(u.NS, subnet)
	case UndoSysctl:
		if err := u.NS.SetSysctl(u.Name, u.Value); err != nil && !isNoEnt(err) {
			return fmt.Errorf("restore sysctl %s=%s: %w", u.Name, u.Value, err)
		}
		return nil
	}
	return fmt.Errorf("unknown network resource %q", u.What)
}

// delLink deletes a link stepbox made. One gone between the lookup and
// the delete counts as deleted: a veth goes with its peer when the box's
// namespace is freed, which the kernel does in a work queue of its own,
// so the host end can vanish while teardown holds its index.
func delLink(h *netlink.Handle, l netlink.Link) error {
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("RTM_DELLINK %s (ip link del %s): %w", l.Attrs().Name, l.Attrs().Name, err)
	}
	return nil
}

// delTagged deletes every rule of the table whose comment is tag.
func delTagged(ns NS, table, tag string) error {
	c, err := ns.Nft()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("NFT_MSG_GETCHAIN: %w", err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return fmt.Errorf("NFT_MSG_GETRULE %s %s: %w", table, ch.Name, err)
		}
		for _, r := range rules {
			if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && s == tag {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("NFT_MSG_DELRULE (comment %q): %w", tag, err)
	}
	return nil
}
