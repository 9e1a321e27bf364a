package network

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The kernel derives a trace ID from the skb's address and flow hash, so
// a later packet of one flow can carry the ID of an earlier one: each
// mark by a trace rule starts a packet of its own, and events of IDs no
// trace rule marked are left out.
func TestATraceIDReusedByALaterPacketStartsANewPacket(t *testing.T) {
	mark := TraceEvent{ID: 7, Table: Table, Chain: "trace_from_box", Handle: 3, Type: unix.NFT_TRACETYPE_RULE, Verdict: "continue"}
	fwd := TraceEvent{ID: 7, Table: Table, Chain: "forward", Handle: 6, Type: unix.NFT_TRACETYPE_RULE, Verdict: "accept", IIF: 4, OIF: 4}
	end := TraceEvent{ID: 7, Table: Table, Chain: "postrouting", Type: unix.NFT_TRACETYPE_RULE, Verdict: "continue"}
	policy := TraceEvent{ID: 7, Table: Table, Chain: "postrouting", Type: unix.NFT_TRACETYPE_POLICY, Verdict: "accept"}
	other := TraceEvent{ID: 9, Table: "filter", Chain: "FORWARD", Handle: 2, Type: unix.NFT_TRACETYPE_RULE, Verdict: "drop"}
	syn, ack := mark, mark
	syn.Packet, ack.Packet = "tcp 172.20.0.3:5 → 172.20.0.2:80 (syn)", "tcp 172.20.0.3:5 → 172.20.0.2:80 (ack)"
	var tr Trace
	tr.AddNftTrace([]TraceEvent{syn, fwd, end, policy, other, ack, fwd},
		[]Rule{{Chain: "forward", Handle: 6, Text: `iifname "stepbox0" counter packets 9 bytes 900 accept`}},
		map[uint32]string{4: "stepbox0"})
	if len(tr.Packets) != 2 {
		t.Fatalf("%d packets, want 2: %+v", len(tr.Packets), tr.Packets)
	}
	want := [][]string{
		{`ip stepbox forward in stepbox0 out stepbox0: rule "iifname \"stepbox0\" counter accept" (handle 6) → accept`,
			"ip stepbox postrouting: no rule decided, policy accept"},
		{`ip stepbox forward in stepbox0 out stepbox0: rule "iifname \"stepbox0\" counter accept" (handle 6) → accept`},
	}
	for i, p := range tr.Packets {
		if strings.Join(p.Path, "\n") != strings.Join(want[i], "\n") {
			t.Errorf("packet %d (%s):\n%s\nwant:\n%s", i+1, p.Packet, strings.Join(p.Path, "\n"), strings.Join(want[i], "\n"))
		}
	}
	if len(tr.NftNotes) != 0 {
		t.Errorf("a trace that met the postrouting NAT chain explains NAT chains missing: %q", tr.NftNotes)
	}
	if !strings.HasSuffix(tr.Packets[1].Packet, "(ack)") {
		t.Errorf("the second packet is %q, want the ack", tr.Packets[1].Packet)
	}
}

// A trace whose packets met no NAT chain says why: NAT chains see only
// a connection's first packet, once conntrack is on.
func TestATraceWithoutNATChainsSaysWhy(t *testing.T) {
	var tr Trace
	tr.AddNftTrace([]TraceEvent{
		{ID: 1, Table: Table, Chain: "trace_from_box", Handle: 3, Type: unix.NFT_TRACETYPE_RULE, Verdict: "continue"},
		{ID: 1, Table: Table, Chain: "forward", Type: unix.NFT_TRACETYPE_POLICY, Verdict: "accept"},
	}, nil, nil)
	if len(tr.NftNotes) != 1 || !strings.Contains(tr.NftNotes[0], "only once a NAT rule") {
		t.Errorf("notes %q", tr.NftNotes)
	}
}

// A routed packet gets a new trace ID after the routing decision: its
// later events join it by the IPv4 protocol, length and identification
// that the first event of each chain carries; another packet's do not.
func TestARoutedPacketKeepsItsPathAcrossANewTraceID(t *testing.T) {
	mark := TraceEvent{ID: 1, Table: Table, Chain: "trace_from_box", Handle: 3, Type: unix.NFT_TRACETYPE_RULE, Verdict: "continue", Packet: "icmp echo-request", key: "1/84/100"}
	fwd := TraceEvent{ID: 2, Table: Table, Chain: "forward", Handle: 6, Type: unix.NFT_TRACETYPE_RULE, Verdict: "accept", key: "1/84/100"}
	policy := TraceEvent{ID: 2, Table: Table, Chain: "postrouting", Type: unix.NFT_TRACETYPE_POLICY, Verdict: "accept"}
	stranger := TraceEvent{ID: 5, Table: "filter", Chain: "FORWARD", Handle: 1, Type: unix.NFT_TRACETYPE_RULE, Verdict: "drop", key: "6/60/7"}
	var tr Trace
	tr.AddNftTrace([]TraceEvent{mark, fwd, stranger, policy}, nil, nil)
	if len(tr.Packets) != 1 || len(tr.Packets[0].Path) != 2 {
		t.Fatalf("packets %+v, want one with forward and postrouting", tr.Packets)
	}
	if p := strings.Join(tr.Packets[0].Path, "\n"); !strings.Contains(p, "forward: rule handle 6 → accept") || !strings.Contains(p, "postrouting: no rule decided, policy accept") {
		t.Errorf("path:\n%s", p)
	}
}
