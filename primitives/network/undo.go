package network

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
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

// LinkAlias begins the alias (IFLA_IFALIAS) of every link stepbox makes,
// and the ID of the session that made it follows (LinkMark): teardown and
// the sweep delete a link only when its alias names the session whose
// ledger names the link, whatever the ledger says. A stale or planted
// ledger of another session names links by name only, and a live
// session's bridge or veth of that name is not its to delete (ut30 F1).
const LinkAlias = "stepbox"

// LinkMark is the alias of a link session made.
func LinkMark(session string) string { return LinkAlias + " " + session }

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

// Refused is an undo teardown will not carry out: the line names what
// stepbox never makes, or what the kernel shows is not the ledger's
// session's own. It is said, and nothing is done.
type Refused struct{ error }

func (r Refused) Unwrap() error { return r.error }

func refuse(format string, a ...any) error {
	return Refused{fmt.Errorf("ledger: refusing to undo: "+format, a...)}
}

// Owner is the session whose ledger a teardown undoes, and the network
// namespaces (by inode) where the kernel held something of it, a link it
// marked or its table, when the teardown began: a sysctl carries no
// mark, so only there is its old value the session's to write back.
type Owner struct {
	Session string
	held    map[uint64]bool
}

// NewOwner reads, before any of undos is carried out, where the kernel
// holds something of session.
func NewOwner(session string, undos []Undo) *Owner {
	o := &Owner{Session: session, held: map[uint64]bool{}}
	for _, u := range undos {
		if u.What != UndoSysctl {
			continue
		}
		if _, seen := o.held[u.NS.Ino]; !seen {
			o.held[u.NS.Ino] = holds(u.NS, session)
		}
	}
	return o
}

// Do carries out the undo for the session o. A namespace or object
// already gone counts as undone: it went with the box's namespace, or an
// earlier try.
func (u Undo) Do(o *Owner) error {
	if err := u.valid(); err != nil {
		return Refused{fmt.Errorf("ledger: refusing to undo: %w", err)}
	}
	err := u.do(o)
	if errors.Is(err, ErrNSGone) {
		return nil
	}
	return err
}

// ownLink finds the link the line names and checks that the session made
// it: nil, nil where there is no such link.
func (u Undo) ownLink(h *netlink.Handle, session string) (netlink.Link, error) {
	l, err := h.LinkByName(u.Name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("RTM_GETLINK %s: %w", u.Name, err)
	}
	if why := notMarked(l, session); why != "" {
		return nil, refuse("link %s %s: left in place", u.Name, why)
	}
	return l, nil
}

// notMarked says why link l is not one session made, or "".
func notMarked(l netlink.Link, session string) string {
	name := l.Attrs().Name
	switch alias := l.Attrs().Alias; {
	case alias == LinkMark(session):
		return ""
	case alias == LinkAlias:
		return fmt.Sprintf("carries stepbox's alias without a session's ID (an older stepbox's, or set by hand), so it cannot be told to be session %s's (`ip link del %s` removes it)", session, name)
	case strings.HasPrefix(alias, LinkAlias+" "):
		return fmt.Sprintf("was made by stepbox session %s (its alias %q), not by session %s whose ledger names it", step.Escape(strings.TrimPrefix(alias, LinkAlias+" ")), alias, session)
	}
	return fmt.Sprintf("has no alias %q, so stepbox did not make it", LinkMark(session))
}

// ownTable checks that stepbox's table is the session's, for what (rules
// or a chain of it; "": the table): false, nil where there is no table.
func ownTable(c *nftables.Conn, session, what string) (bool, error) {
	if _, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4); err != nil {
		return false, nil // no such table
	}
	owner, err := tableOwner(c)
	if err != nil {
		return false, err
	}
	if what != "" {
		what += ": "
	}
	switch owner {
	case session:
		return true, nil
	case "":
		return false, refuse("%stable ip %s carries no set naming the session that made it (an older stepbox's, or made by hand), so it cannot be told to be session %s's: left in place (`nft delete table ip %s` removes it)", what, Table, session, Table)
	}
	return false, refuse("%stable ip %s was made by stepbox session %s, not by session %s whose ledger names it: left in place", what, Table, step.Escape(owner), session)
}

func (u Undo) do(o *Owner) error {
	switch u.What {
	case UndoLink:
		h, err := u.NS.Handle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := u.ownLink(h, o.Session)
		if l == nil || err != nil {
			return err
		}
		return delLink(h, l)
	case UndoTable:
		c, err := u.NS.Nft()
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		if own, err := ownTable(c, o.Session, ""); !own || err != nil {
			return err
		}
		c.DelTable(&nftables.Table{Name: u.Name, Family: nftables.TableFamilyIPv4})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("NFT_MSG_DELTABLE ip %s (nft delete table ip %s): %w", u.Name, u.Name, err)
		}
		return nil
	case UndoChain, UndoRules:
		// Chains and rules of the session's own table only: another
		// session's has rules with the same comments.
		c, err := u.NS.Nft()
		if err != nil {
			return err
		}
		what := fmt.Sprintf("the rules commented %q", u.Tag)
		if u.What == UndoChain {
			what = "chain " + u.Tag
		}
		own, err := ownTable(c, o.Session, what)
		c.CloseLasting()
		if !own || err != nil {
			return err
		}
		if u.What == UndoChain {
			return delChains(u.NS, u.Tag)
		}
		return delTagged(u.NS, u.Name, u.Tag)
	case UndoConntrack:
		// Undone after the bridge: what still has an address or route in
		// the subnet is someone else's, and so are its connections.
		_, subnet, _ := net.ParseCIDR(u.Name)
		h, err := u.NS.Handle()
		if err != nil {
			return err
		}
		used, err := SubnetInUse(h, subnet)
		h.Close()
		if err != nil {
			return err
		}
		if used != "" {
			return refuse("conntrack entries of %s: the host side's %s holds that subnet now, so they are not session %s's: left in place", subnet, step.Escape(used), o.Session)
		}
		return DeleteFlows(u.NS, subnet)
	case UndoSysctl:
		if err := u.sysctlOwn(o); err != nil {
			return err
		}
		if err := u.NS.SetSysctl(u.Name, u.Value); err != nil && !isNoEnt(err) {
			return fmt.Errorf("restore sysctl %s=%s: %w", u.Name, u.Value, err)
		}
		return nil
	}
	return fmt.Errorf("unknown network resource %q", u.What)
}

// sysctlOwn refuses to write a sysctl back where the session's old value
// may no longer be the right one: a sysctl carries no mark of who changed
// it. A link's own (conf.LINK.route_localnet) is written only on a link
// the session made; ip_forward only in a namespace where the session
// still held a link or its table when its teardown began (a ledger left
// from before a reboot, or whose network someone removed, says nothing
// of today's namespace), and where no other stepbox session has a link
// or table: their boxes' traffic would stop being forwarded.
func (u Undo) sysctlOwn(o *Owner) error {
	if link, ok := strings.CutSuffix(strings.TrimPrefix(u.Name, "net.ipv4.conf."), ".route_localnet"); ok {
		h, err := u.NS.Handle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName(link)
		if err != nil {
			return nil // no such link: no such sysctl either
		}
		if why := notMarked(l, o.Session); why != "" {
			return refuse("sysctl %s=%s: link %s %s: left as it is", u.Name, u.Value, link, why)
		}
		return nil
	}
	if !o.held[u.NS.Ino] {
		return refuse("sysctl %s=%s in %s: nothing of session %s (a link with its alias, its table) was there when its teardown began, so the value there is not the session's to write back: left as it is", u.Name, u.Value, u.NS.Path, o.Session)
	}
	if others, err := others(u.NS, o.Session); err != nil {
		return err
	} else if len(others) > 0 {
		return refuse("sysctl %s=%s in %s: other stepbox sessions' %s there rely on it: left as it is", u.Name, u.Value, u.NS.Path, strings.Join(others, ", "))
	}
	return nil
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
