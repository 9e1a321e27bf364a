package network

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"

	"stepbox/primitives/step"
)

// What marks stepbox's network objects as one session's, so that only
// that session's ledger undoes them: a link's alias (LinkMark), and in
// stepbox's table an empty set named after the session (ownerSet): the
// nftables library stepbox uses writes no table userdata, and a set is
// made in the table's own batch and shows in `nft list table`.

const ownerSetPrefix = "session_"

// ownerSet is the name of the set that marks the table as session's
// ("PID-START" → session_PID_START: nft's identifiers have no '-').
func ownerSet(session string) string {
	return ownerSetPrefix + strings.ReplaceAll(session, "-", "_")
}

// ownerSetDef is the marking set, for the table's batch and its shell line.
func ownerSetDef(session string) (*nftables.Set, string) {
	comment := "made by stepbox session " + session + ": teardown deletes the table only for it"
	return &nftables.Set{Table: table(), Name: ownerSet(session), KeyType: nftables.TypeIPAddr,
			KeyByteOrder: binaryutil.BigEndian, Comment: comment},
		fmt.Sprintf("nft add set ip %s %s '{ type ipv4_addr; comment %q; }'", Table, ownerSet(session), comment)
}

// tableOwner is the session that made stepbox's table, "" when no set
// names one.
func tableOwner(c *nftables.Conn) (string, error) {
	sets, err := c.GetSets(table())
	if err != nil {
		return "", fmt.Errorf("NFT_MSG_GETSET %s: %w", Table, err)
	}
	for _, s := range sets {
		if id, ok := strings.CutPrefix(s.Name, ownerSetPrefix); ok {
			return strings.Replace(id, "_", "-", 1), nil
		}
	}
	return "", nil
}

// holds says whether the kernel holds, in ns, a link session marked or
// session's table.
func holds(ns NS, session string) bool {
	if h, err := ns.Handle(); err == nil {
		links, _ := h.LinkList()
		h.Close()
		for _, l := range links {
			if l.Attrs().Alias == LinkMark(session) {
				return true
			}
		}
	}
	c, err := ns.Nft()
	if err != nil {
		return false
	}
	defer c.CloseLasting()
	if _, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4); err != nil {
		return false
	}
	owner, err := tableOwner(c)
	return err == nil && owner == session
}

// others names what of other stepbox sessions (or of an older stepbox,
// unmarked) ns holds: links with stepbox's alias, stepbox's table.
func others(ns NS, session string) ([]string, error) {
	var out []string
	h, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK: %w", err)
	}
	for _, l := range links {
		a := l.Attrs().Alias
		if (a == LinkAlias || strings.HasPrefix(a, LinkAlias+" ")) && a != LinkMark(session) {
			out = append(out, fmt.Sprintf("%s %s (alias %q)", l.Type(), step.Escape(l.Attrs().Name), a))
		}
	}
	c, err := ns.Nft()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	if _, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4); err == nil {
		owner, err := tableOwner(c)
		if err != nil {
			return nil, err
		}
		if owner != session {
			who := "unmarked"
			if owner != "" {
				who = "of session " + step.Escape(owner)
			}
			out = append(out, "table ip "+Table+" ("+who+")")
		}
	}
	return out, nil
}
