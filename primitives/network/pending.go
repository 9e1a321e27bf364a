package network

import (
	"github.com/google/nftables"
)

// Pending says what Do would remove or restore, in a few words, when the
// kernel still has it: a link stepbox made, its nft table, a sysctl not
// yet back to its old value. Rules, trace chains and conntrack entries go
// with the table and the bridge, and are not named on their own.
func (u Undo) Pending() (string, bool) {
	if u.valid() != nil {
		return "", false
	}
	switch u.What {
	case UndoLink:
		h, err := u.NS.Handle()
		if err != nil {
			return "", false
		}
		defer h.Close()
		l, err := h.LinkByName(u.Name)
		if err != nil || l.Attrs().Alias != LinkAlias {
			return "", false
		}
		return "deleted " + l.Type() + " " + u.Name, true
	case UndoTable:
		c, err := u.NS.Nft()
		if err != nil {
			return "", false
		}
		defer c.CloseLasting()
		if _, err := c.ListTableOfFamily(u.Name, nftables.TableFamilyIPv4); err != nil {
			return "", false
		}
		return "deleted nft table ip " + u.Name, true
	case UndoSysctl:
		v, err := u.NS.Sysctl(u.Name)
		if err != nil || v == u.Value {
			return "", false
		}
		return "wrote " + u.Name + " back: " + v + " → " + u.Value, true
	}
	return "", false
}
