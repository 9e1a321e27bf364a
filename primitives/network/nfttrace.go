package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftables tracing (nft-monitor(8) "trace"): a rule that sets
// `meta nftrace` on a packet makes every later chain and rule the packet
// meets report itself on the NFNLGRP_NFTRACE netlink group, with the
// verdict. The trace chains live in stepbox's own table, match only the
// box's address, and exist only while one traced command runs.

// TraceTag marks the trace chains' rules.
func TraceTag(box string) string { return "stepbox trace " + box }

// The trace chains. What the box sends is marked as it reaches the host
// side, before conntrack and NAT (priority raw), so every chain after
// sees it. What goes to the box is marked just after destination NAT
// (priority dstnat + 1), where a reply to a masqueraded connection or a
// request to a published port already carries the box's address; in
// output for what the host side itself sends.
var traceChains = []struct {
	name     string
	hook     *nftables.ChainHook
	hookName string
	hookWord string
	prio     nftables.ChainPriority
	prioWord string
	dst      bool // marks packets to the box (else from it)
}{
	{"trace_from_box", nftables.ChainHookPrerouting, "PRE_ROUTING", "prerouting", -300, "raw", false},
	{"trace_to_box", nftables.ChainHookPrerouting, "PRE_ROUTING", "prerouting", -99, "dstnat + 1", true},
	{"trace_output", nftables.ChainHookOutput, "LOCAL_OUT", "output", -99, "-99", true},
}

func isTraceChain(name string) bool {
	for _, c := range traceChains {
		if c.name == name {
			return true
		}
	}
	return false
}

// nftraceOn is `meta nftrace set 1`.
func nftraceOn() part {
	return part{[]expr.Any{
		&expr.Immediate{Register: 1, Data: []byte{1}},
		&expr.Meta{Key: expr.MetaKeyNFTRACE, SourceRegister: true, Register: 1},
	}, "meta nftrace set 1"}
}

// AddTraceChains adds the trace chains to stepbox's table, each written
// to the ledger first, with rules that mark packets from and to boxIP.
func AddTraceChains(op *Op, host NS, box string, boxIP net.IP) error {
	c, err := host.Nft()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	self := &net.IPNet{IP: boxIP.To4(), Mask: net.CIDRMask(32, 32)}
	accept := nftables.ChainPolicyAccept
	var calls []string
	for _, ch := range traceChains {
		if err := op.record(Undo{What: UndoChain, NS: host, Name: Table, Tag: ch.name}); err != nil {
			return err
		}
		c.AddChain(&nftables.Chain{Name: ch.name, Table: table(), Type: nftables.ChainTypeFilter, Hooknum: ch.hook,
			Priority: nftables.ChainPriorityRef(ch.prio), Policy: &accept})
		calls = append(calls, fmt.Sprintf("NFT_MSG_NEWCHAIN{table=%q, name=%q, type=\"filter\", hook=NF_INET_%s, priority=%d, policy=NF_ACCEPT}",
			Table, ch.name, ch.hookName, ch.prio))
		op.Shell(fmt.Sprintf("nft add chain ip %s %s '{ type filter hook %s priority %s; policy accept; }'",
			Table, ch.name, ch.hookWord, ch.prioWord))
		r := ruleSpec{matchAddr(ch.dst, self), counter(), nftraceOn()}
		c.AddRule(&nftables.Rule{Table: table(), Chain: chain(ch.name), Exprs: r.exprs(),
			UserData: userdata.AppendString(nil, userdata.TypeComment, TraceTag(box))})
		calls = append(calls, fmt.Sprintf("NFT_MSG_NEWRULE{table=%q, chain=%q, exprs=[%s], userdata=comment %q}", Table, ch.name, exprNames(r), TraceTag(box)))
		op.Shell(fmt.Sprintf("nft add rule ip %s %s '%s comment %q'", Table, ch.name, r, TraceTag(box)))
	}
	return op.flush(c, calls)
}

// DelTraceChains removes the trace chains and their rules in one batch
// (each base chain's hook unregistration waits for an RCU grace period,
// once per batch).
func DelTraceChains(op *Op, host NS) error {
	var calls, names []string
	for _, ch := range traceChains {
		names = append(names, ch.name)
		calls = append(calls, fmt.Sprintf("NFT_MSG_DELRULE{table=%q, chain=%q} NFT_MSG_DELCHAIN{table=%q, name=%q}", Table, ch.name, Table, ch.name))
		op.Shell(fmt.Sprintf("nft flush chain ip %s %s && nft delete chain ip %s %s", Table, ch.name, Table, ch.name))
	}
	return op.Do(fmt.Sprintf("sendmsg(NETLINK_NETFILTER, %v)", calls), func() error { return delChains(host, names...) })
}

// delChains flushes and deletes chains of stepbox's table in one batch;
// a chain or table already gone counts as deleted.
func delChains(host NS, names ...string) error {
	c, err := host.Nft()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	n := 0
	for _, name := range names {
		if _, err := c.ListChain(table(), name); err != nil {
			continue
		}
		c.FlushChain(chain(name))
		c.DelChain(chain(name))
		n++
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("NFT_MSG_DELCHAIN ip %s %v (nft delete chain): %w", Table, names, err)
	}
	return nil
}

// TraceEvent is one NFT_MSG_TRACE message: a chain or rule that a traced
// packet met, and what it decided.
type TraceEvent struct {
	ID           uint32 // NFTA_TRACE_ID: the same for every event of one packet
	Table, Chain string
	Handle       uint64 // the rule's, for a rule event
	Type         uint32 // NFT_TRACETYPE_RULE, _POLICY or _RETURN
	Verdict      string // accept, drop, continue, jump CHAIN…
	IIF, OIF     uint32
	Packet       string // the network and transport headers, decoded
	key          string // what NAT and routing leave of the IPv4 header
}

// headerKey is what stays of an IPv4 header from hook to hook whatever
// NAT and routing change: the protocol, total length and identification.
func headerKey(nh []byte) string {
	if len(nh) < 20 || nh[0]>>4 != 4 {
		return ""
	}
	return fmt.Sprintf("%d/%d/%d", nh[9], binary.BigEndian.Uint16(nh[2:4]), binary.BigEndian.Uint16(nh[4:6]))
}

// TraceListener reads NFNLGRP_NFTRACE on the host side while a traced
// command runs.
type TraceListener struct {
	conn     *mdnetlink.Conn
	mu       sync.Mutex
	events   []TraceEvent
	err      error
	done     chan struct{}
	quiet    time.Duration
	stopping atomic.Bool
}

// ListenTrace joins NFNLGRP_NFTRACE in the host side's namespace. The
// kernel sends trace events only while some socket listens, so this comes
// before the command.
func ListenTrace(host NS) (*TraceListener, error) {
	l := &TraceListener{done: make(chan struct{})}
	err := host.in(func() error {
		c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return fmt.Errorf("socket(AF_NETLINK, NETLINK_NETFILTER): %w", err)
		}
		if err := c.JoinGroup(unix.NFNLGRP_NFTRACE); err != nil {
			c.Close()
			return fmt.Errorf("setsockopt(NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE): %w", err)
		}
		_ = c.SetReadBuffer(1 << 20)
		l.conn = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	go l.read()
	return l, nil
}

func (l *TraceListener) read() {
	defer close(l.done)
	for {
		msgs, err := l.conn.Receive()
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				l.mu.Lock()
				l.err = fmt.Errorf("recvmsg(NFNLGRP_NFTRACE): %w", err)
				l.mu.Unlock()
			}
			return
		}
		for _, m := range msgs {
			if m.Header.Type != mdnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_TRACE) || len(m.Data) < 4 {
				continue
			}
			ev, err := parseTrace(m.Data[4:]) // after struct nfgenmsg
			if err != nil {
				continue
			}
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
		if l.stopping.Load() {
			_ = l.conn.SetReadDeadline(time.Now().Add(l.quiet))
		}
	}
}

// Stop reads on until the group has been quiet for quiet (packets still
// on their way when the command ended: a TCP close, a late reply), then
// leaves the group and returns the events in the order they came.
func (l *TraceListener) Stop(quiet time.Duration) ([]TraceEvent, error) {
	l.quiet = quiet
	l.stopping.Store(true)
	_ = l.conn.SetReadDeadline(time.Now().Add(quiet))
	<-l.done
	cerr := l.conn.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events, errors.Join(l.err, cerr)
}

func parseTrace(b []byte) (TraceEvent, error) {
	var ev TraceEvent
	ad, err := mdnetlink.NewAttributeDecoder(b)
	if err != nil {
		return ev, err
	}
	ad.ByteOrder = binary.BigEndian
	var nh, th []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TRACE_ID:
			ev.ID = ad.Uint32()
		case unix.NFTA_TRACE_TABLE:
			ev.Table = ad.String()
		case unix.NFTA_TRACE_CHAIN:
			ev.Chain = ad.String()
		case unix.NFTA_TRACE_RULE_HANDLE:
			ev.Handle = ad.Uint64()
		case unix.NFTA_TRACE_TYPE:
			ev.Type = ad.Uint32()
		case unix.NFTA_TRACE_IIF:
			ev.IIF = ad.Uint32()
		case unix.NFTA_TRACE_OIF:
			ev.OIF = ad.Uint32()
		case unix.NFTA_TRACE_NETWORK_HEADER:
			nh = ad.Bytes()
		case unix.NFTA_TRACE_TRANSPORT_HEADER:
			th = ad.Bytes()
		case unix.NFTA_TRACE_POLICY:
			ev.Verdict = verdictName(int32(ad.Uint32()), "")
		case unix.NFTA_TRACE_VERDICT:
			ad.Nested(func(nad *mdnetlink.AttributeDecoder) error {
				var code int32
				var target string
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_VERDICT_CODE:
						code = int32(nad.Uint32())
					case unix.NFTA_VERDICT_CHAIN:
						target = nad.String()
					}
				}
				ev.Verdict = verdictName(code, target)
				return nil
			})
		}
	}
	ev.Packet = headerWords(nh, th)
	ev.key = headerKey(nh)
	return ev, ad.Err()
}

// verdictName names a verdict code of include/uapi/linux/netfilter.h and
// nf_tables.h (NF_DROP 0, NF_ACCEPT 1, NFT_CONTINUE -1 … NFT_RETURN -5).
func verdictName(code int32, target string) string {
	switch code {
	case 0:
		return "drop"
	case 1:
		return "accept"
	case 2:
		return "stolen"
	case 3:
		return "queue"
	case -1:
		return "continue"
	case -2:
		return "break"
	case -3:
		return "jump " + target
	case -4:
		return "goto " + target
	case -5:
		return "return"
	}
	return fmt.Sprintf("verdict %d", code)
}

// headerWords is an IPv4 packet's protocol, addresses and ports (or ICMP
// type) from the headers the trace carries.
func headerWords(nh, th []byte) string {
	if len(nh) < 20 || nh[0]>>4 != 4 {
		return ""
	}
	src, dst := net.IP(nh[12:16]), net.IP(nh[16:20])
	switch nh[9] {
	case unix.IPPROTO_ICMP:
		kind := "icmp"
		if len(th) > 0 {
			kind = map[byte]string{0: "icmp echo-reply", 8: "icmp echo-request", 3: "icmp unreachable"}[th[0]]
			if kind == "" {
				kind = fmt.Sprintf("icmp type %d", th[0])
			}
		}
		return fmt.Sprintf("%s %s → %s", kind, src, dst)
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
		if len(th) >= 4 {
			return fmt.Sprintf("%s %s:%d → %s:%d", protoName(nh[9]), src, binary.BigEndian.Uint16(th[0:2]), dst, binary.BigEndian.Uint16(th[2:4]))
		}
	}
	return fmt.Sprintf("%s %s → %s", protoName(nh[9]), src, dst)
}

// TracedPacket is one packet the trace followed: its headers where it was
// marked, and each chain or rule it met after, with the verdict.
type TracedPacket struct {
	Packet string
	Path   []string
	key    string
}

// AddNftTrace keeps the events of the packets the trace chains marked
// (a rule of theirs matched: the box's packets, nobody else's) and turns
// them into paths; rules names stepbox's rules by handle, links the host
// side's interfaces by index.
//
// The kernel's trace ID is a hash of the skb's address, flow hash and
// input interface: later packets of one flow may reuse it, and a routed
// packet gets a new one after the routing decision. So a packet starts
// where a trace rule marks it (once per packet), and an event with an ID
// not seen yet belongs to the latest packet with the same IPv4 protocol,
// length and identification (the first event of each chain carries the
// headers), the ID an alias of it from then on.
func (tr *Trace) AddNftTrace(events []TraceEvent, rules []Rule, links map[uint32]string) {
	text := map[uint64]string{}
	for _, r := range rules {
		text[r.Handle] = r.Text
	}
	current := map[uint32]int{}
	sawNAT := false
	for _, ev := range events {
		if ev.Table == Table && isTraceChain(ev.Chain) {
			if ev.Type == unix.NFT_TRACETYPE_RULE && ev.Handle != 0 {
				current[ev.ID] = len(tr.Packets)
				tr.Packets = append(tr.Packets, TracedPacket{Packet: ev.Packet, key: ev.key})
			}
			continue
		}
		i, ok := current[ev.ID]
		if !ok && ev.key != "" {
			for j := len(tr.Packets) - 1; j >= 0; j-- {
				if tr.Packets[j].key == ev.key {
					i, ok = j, true
					current[ev.ID] = j
					break
				}
			}
		}
		// Not shown: packets no trace rule marked, and the end of a
		// chain's rules (a rule event with no handle), which the chain's
		// policy event follows.
		if !ok || (ev.Type == unix.NFT_TRACETYPE_RULE && ev.Handle == 0) {
			continue
		}
		tr.Packets[i].Path = append(tr.Packets[i].Path, ev.line(text, links))
		if ev.Table == Table && natChain(ev.Chain) {
			sawNAT = true
		}
	}
	if len(tr.Packets) > 0 && !sawNAT {
		tr.NftNotes = append(tr.NftNotes, "no packet met stepbox's NAT chains: the kernel runs NAT chains only for a connection's first packet, and only once a NAT rule (`net nat`, `net publish`) has turned conntrack on")
	}
}

func natChain(name string) bool {
	for _, c := range chains {
		if c.name == name {
			return c.typ == nftables.ChainTypeNAT
		}
	}
	return false
}

var counterValues = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// line is one event in nft monitor trace's words.
func (ev TraceEvent) line(text map[uint64]string, links map[uint32]string) string {
	where := fmt.Sprintf("ip %s %s", ev.Table, ev.Chain)
	if n := links[ev.IIF]; n != "" {
		where += " in " + n
	}
	if n := links[ev.OIF]; n != "" {
		where += " out " + n
	}
	switch ev.Type {
	case unix.NFT_TRACETYPE_POLICY:
		return fmt.Sprintf("%s: no rule decided, policy %s", where, ev.Verdict)
	case unix.NFT_TRACETYPE_RETURN:
		return fmt.Sprintf("%s: end of chain, %s", where, ev.Verdict)
	}
	rule := fmt.Sprintf("rule handle %d", ev.Handle)
	if t, ok := text[ev.Handle]; ok && ev.Table == Table {
		rule = fmt.Sprintf("rule %q (handle %d)", counterValues.ReplaceAllString(t, "counter"), ev.Handle)
	}
	return fmt.Sprintf("%s: %s → %s", where, rule, ev.Verdict)
}
