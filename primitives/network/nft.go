package network

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// Table is stepbox's own nf_tables table on the host side; deleting it
// takes every rule stepbox made with it.
const Table = "stepbox"

// The table's base chains, named and hooked as Docker's nat and filter
// chains are.
var chains = []struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	prio     *nftables.ChainPriority
	hookWord string
	prioWord string
}{
	{"prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, "prerouting", "dstnat"},
	{"output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest, "output", "-100"},
	{"postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, "postrouting", "srcnat"},
	{"forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter, "forward", "filter"},
}

func table() *nftables.Table {
	return &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
}

func chain(name string) *nftables.Chain { return &nftables.Chain{Name: name, Table: table()} }

// TableExists reports whether the host side has a table called stepbox.
func TableExists(host NS) (bool, error) {
	c, err := host.Nft()
	if err != nil {
		return false, err
	}
	defer c.CloseLasting()
	_, err = c.ListTableOfFamily(Table, nftables.TableFamilyIPv4)
	return err == nil, nil
}

// AddTable makes stepbox's table and its four base chains in one
// nf_tables batch (policy accept: the chains count and translate, they
// never drop).
func AddTable(op *Op, host NS) error {
	c, err := host.Nft()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	if err := op.record(Undo{What: UndoTable, NS: host, Name: Table}); err != nil {
		return err
	}
	if op.Session == "" {
		return fmt.Errorf("table ip %s: no session to mark it with", Table)
	}
	c.AddTable(table())
	calls := []string{fmt.Sprintf("NFT_MSG_NEWTABLE{family=NFPROTO_IPV4, name=%q}", Table)}
	op.Shell("nft add table ip " + Table)
	// Marked in the same batch: no table of stepbox's is ever unmarked.
	set, line := ownerSetDef(op.Session)
	if err := c.AddSet(set, nil); err != nil {
		return err
	}
	calls = append(calls, fmt.Sprintf("NFT_MSG_NEWSET{table=%q, name=%q, key_type=ipv4_addr, userdata=comment %q}", Table, set.Name, set.Comment))
	op.Shell(line)
	accept := nftables.ChainPolicyAccept
	for _, ch := range chains {
		c.AddChain(&nftables.Chain{Name: ch.name, Table: table(), Type: ch.typ, Hooknum: ch.hook, Priority: ch.prio, Policy: &accept})
		calls = append(calls, fmt.Sprintf("NFT_MSG_NEWCHAIN{table=%q, name=%q, type=%q, hook=NF_INET_%s, priority=%d, policy=NF_ACCEPT}",
			Table, ch.name, ch.typ, strings.ToUpper(ch.hookWord), *ch.prio))
		op.Shell(fmt.Sprintf("nft add chain ip %s %s '{ type %s hook %s priority %s; policy accept; }'", Table, ch.name, ch.typ, ch.hookWord, ch.prioWord))
	}
	return op.flush(c, calls)
}

type chainRule struct {
	chain string
	spec  ruleSpec
}

// addRules appends the rules to their chains in one batch, each with a
// counter and the comment tag that teardown finds them by.
func addRules(op *Op, host NS, tag string, rules []chainRule) error {
	c, err := host.Nft()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	if err := op.record(Undo{What: UndoRules, NS: host, Name: Table, Tag: tag}); err != nil {
		return err
	}
	var calls []string
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: table(), Chain: chain(r.chain), Exprs: r.spec.exprs(),
			UserData: userdata.AppendString(nil, userdata.TypeComment, tag)})
		calls = append(calls, fmt.Sprintf("NFT_MSG_NEWRULE{table=%q, chain=%q, exprs=[%s], userdata=comment %q}", Table, r.chain, exprNames(r.spec), tag))
		op.Shell(fmt.Sprintf("nft add rule ip %s %s '%s comment %q'", Table, r.chain, r.spec, tag))
	}
	return op.flush(c, calls)
}

func exprNames(r ruleSpec) string {
	var names []string
	for _, e := range r.exprs() {
		n := fmt.Sprintf("%T", e)
		names = append(names, strings.ToLower(strings.TrimPrefix(n, "*expr.")))
	}
	return strings.Join(names, " ")
}

// NATTag marks the masquerade rules of a bridge.
func NATTag(bridge string) string { return "stepbox nat " + bridge }

// AddNAT masquerades what leaves the bridge's subnet for anywhere but the
// bridge, and counts forwarded traffic from and back to the bridge.
func AddNAT(op *Op, host NS, bridge string, subnet *net.IPNet) error {
	return addRules(op, host, NATTag(bridge), []chainRule{
		{"postrouting", ruleSpec{matchAddr(false, subnet), matchIfname(expr.MetaKeyOIFNAME, bridge, true), counter(), masquerade()}},
		{"forward", ruleSpec{matchIfname(expr.MetaKeyIIFNAME, bridge, false), counter(), accept()}},
		{"forward", ruleSpec{matchIfname(expr.MetaKeyOIFNAME, bridge, false), ctEstablished(), counter(), accept()}},
	})
}

// Port is a published port: HOSTPORT:BOXPORT[/udp].
type Port struct {
	Host  uint16 `json:"host"`
	Box   uint16 `json:"box"`
	Proto string `json:"proto"` // tcp or udp
}

func (p Port) String() string { return fmt.Sprintf("%d:%d/%s", p.Host, p.Box, p.Proto) }

// PublishTag marks the rules of one published port.
func PublishTag(box string, p Port) string {
	return fmt.Sprintf("stepbox publish %s %d/%s", box, p.Host, p.Proto)
}

// AddPublish sends what reaches HOSTPORT on any of the host side's own
// addresses to the box: DNAT in prerouting (from outside and from other
// boxes) and in output (from the host side itself, 127.0.0.1 included,
// which route_localnet on the bridge lets out), then masquerade for
// the local and hairpin cases so that the box's replies come back the
// way they went.
func AddPublish(op *Op, host NS, box, bridge string, subnet *net.IPNet, boxIP net.IP, p Port) error {
	self := &net.IPNet{IP: boxIP.To4(), Mask: net.CIDRMask(32, 32)}
	loopback := &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}
	dnat := ruleSpec{daddrLocal(), matchDport(p.Proto, p.Host), counter(), dnatTo(boxIP, p.Box)}
	return addRules(op, host, PublishTag(box, p), []chainRule{
		{"prerouting", dnat},
		{"output", dnat},
		{"postrouting", ruleSpec{matchAddr(false, loopback), matchIfname(expr.MetaKeyOIFNAME, bridge, false), matchAddr(true, self), matchDport(p.Proto, p.Box), ctStatusDNAT(), counter(), masquerade()}},
		{"postrouting", ruleSpec{matchAddr(false, subnet), matchIfname(expr.MetaKeyOIFNAME, bridge, false), matchAddr(true, self), matchDport(p.Proto, p.Box), ctStatusDNAT(), counter(), masquerade()}},
	})
}

// Rule is one rule of stepbox's table as the kernel holds it.
type Rule struct {
	Chain   string
	Handle  uint64
	Text    string // decoded, with the counter's values
	Comment string
	Packets uint64
	Bytes   uint64
}

// Rules reads stepbox's table back from the kernel, chain by chain.
func Rules(host NS) ([]Rule, error) {
	c, err := host.Nft()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	if _, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4); err != nil {
		return nil, nil
	}
	var out []Rule
	for _, ch := range chains {
		rules, err := c.GetRules(table(), chain(ch.name))
		if err != nil {
			return nil, fmt.Errorf("NFT_MSG_GETRULE %s %s: %w", Table, ch.name, err)
		}
		for _, r := range rules {
			x := Rule{Chain: ch.name, Handle: r.Handle, Text: Decode(r.Exprs)}
			x.Comment, _ = userdata.GetString(r.UserData, userdata.TypeComment)
			for _, e := range r.Exprs {
				if cnt, ok := e.(*expr.Counter); ok {
					x.Packets, x.Bytes = cnt.Packets, cnt.Bytes
				}
			}
			out = append(out, x)
		}
	}
	return out, nil
}
