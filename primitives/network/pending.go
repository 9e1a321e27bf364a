package network

// Pending says what Do would remove or restore for the session o, in a
// few words, when the kernel still has it: a link the session made, its
// nft table, a sysctl not yet back to its old value. What Do would
// refuse is not pending. Rules, trace chains and conntrack entries go
// with the table and the bridge, and are not named on their own.
func (u Undo) Pending(o *Owner) (string, bool) {
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
		l, err := u.ownLink(h, o.Session)
		if l == nil || err != nil {
			return "", false
		}
		return "deleted " + l.Type() + " " + u.Name, true
	case UndoTable:
		c, err := u.NS.Nft()
		if err != nil {
			return "", false
		}
		defer c.CloseLasting()
		if own, err := ownTable(c, o.Session, ""); !own || err != nil {
			return "", false
		}
		return "deleted nft table ip " + u.Name, true
	case UndoSysctl:
		v, err := u.NS.Sysctl(u.Name)
		if err != nil || v == u.Value || u.sysctlOwn(o) != nil {
			return "", false
		}
		return "wrote " + u.Name + " back: " + v + " → " + u.Value, true
	}
	return "", false
}
