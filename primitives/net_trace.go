package primitives

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"time"

	"stepbox/primitives/network"
	"stepbox/primitives/step"
)

var ipv4Word = regexp.MustCompile(`\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b`)

// NetTrace runs one command in the box through run and reads from the
// kernel what its packets did (`net trace CMD…`): the route lookups for
// the first IPv4 address in the command, interface and rule counter
// deltas, new neighbour entries and conntrack's connections.
func (b *Box) NetTrace(args []string, run func() error) (network.Trace, error) {
	s := b.session
	tr := network.Trace{Box: b.Name}
	box, err := b.boxNS("net trace")
	if err != nil {
		return tr, err
	}
	host, err := s.netHost()
	if err != nil {
		return tr, err
	}
	var dst net.IP
	for _, a := range args {
		if m := ipv4Word.FindStringSubmatch(a); m != nil {
			if dst = net.ParseIP(m[1]).To4(); dst != nil {
				break
			}
		}
	}
	if dst != nil {
		tr.Dst = dst.String()
		for _, side := range []struct {
			ns   network.NS
			name string
		}{{box, "box " + b.Name}, {host, "host side"}} {
			r, err := network.RouteLookup(side.ns, side.name, dst)
			if err != nil {
				return tr, err
			}
			tr.Routes = append(tr.Routes, r)
		}
	}
	neighBefore, err := b.neighbours(box, host)
	if err != nil {
		return tr, err
	}
	before, err := s.NetMap()
	if err != nil {
		return tr, err
	}
	addrs := []net.IP{dst}
	if b.net.addr != nil {
		addrs = append(addrs, b.net.addr.IP)
	}
	flowsBefore, flowErr := network.Flows(host, addrs...)
	listener, undoTrace := b.startNftTrace(&tr, host, dst)
	runErr := run()
	var events []network.TraceEvent
	if listener != nil {
		var lerr error
		if events, lerr = listener.Stop(20 * time.Millisecond); lerr != nil {
			tr.NftNotes = append(tr.NftNotes, fmt.Sprintf("the trace events could not all be read: %v", lerr))
		}
	}
	after, err := s.NetMap()
	if err != nil {
		undoTrace()
		return tr, err
	}
	if listener != nil {
		tr.AddNftTrace(events, after.Rules, hostLinks(after.Host))
		if len(tr.Packets) == 0 {
			tr.NftNotes = append(tr.NftNotes, "no packet from or to "+b.net.addr.IP.String()+" met a hook of the host side's ip family")
		}
	}
	if err := undoTrace(); err != nil {
		return tr, err
	}
	tr.Deltas(before, after)
	neighAfter, err := b.neighbours(box, host)
	if err != nil {
		return tr, err
	}
	for _, n := range neighAfter {
		if !slices.Contains(neighBefore, n) {
			tr.Neigh = append(tr.Neigh, n)
		}
	}
	flowsAfter, err := network.Flows(host, addrs...)
	if err = errors.Join(flowErr, err); err != nil {
		tr.Flows = []string{fmt.Sprintf("(conntrack could not be read: %v)", err)}
	} else {
		var older int
		tr.Flows, older = network.FreshFlows(flowsBefore, flowsAfter)
		if older > 0 {
			tr.Flows = append(tr.Flows, fmt.Sprintf("(%s of these addresses, from before the trace and not refreshed by it, left out)", step.Count(older, "older entry")))
		}
	}
	return tr, runErr
}

// startNftTrace adds the trace chains to stepbox's table (making the
// table first if the session has none) and joins NFNLGRP_NFTRACE. Where
// the kernel or the box cannot be traced it says why in the trace and
// returns no listener. The returned func removes the chains.
func (b *Box) startNftTrace(tr *network.Trace, host network.NS, dst net.IP) (*network.TraceListener, func() error) {
	s := b.session
	none := func() error { return nil }
	if b.net.addr == nil {
		tr.NftNotes = append(tr.NftNotes, "no nftables trace: box "+b.Name+" has no address to mark its packets by (`net addr`)")
		return nil, none
	}
	if dst != nil && b.net.addr.Contains(dst) {
		tr.NftNotes = append(tr.NftNotes, bridgeNetfilterNote(host))
	}
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	st := &step.Step{Command: "net trace"}
	op := &network.Op{St: st, Session: s.ID}
	hadTable := s.net.table
	if err := s.netTable(op, host); err != nil {
		tr.NftNotes = append(tr.NftNotes, fmt.Sprintf("no nftables trace: %v", err))
		return nil, none
	}
	if !hadTable {
		tr.NftNotes = append(tr.NftNotes, "made table ip "+network.Table+" for the trace chains; teardown deletes it with the session")
	}
	op.Rec = b.recordBox
	undo := func() error {
		s.net.mu.Lock()
		defer s.net.mu.Unlock()
		err := network.DelTraceChains(op, host)
		tr.NftShell = st.Shell
		if err != nil {
			return fmt.Errorf("net trace: removing the trace chains: %w", err)
		}
		return nil
	}
	if err := network.AddTraceChains(op, host, b.Name, b.net.addr.IP); err != nil {
		tr.NftNotes = append(tr.NftNotes, fmt.Sprintf("no nftables trace: the kernel refused the trace chains: %v", err))
		return nil, undo
	}
	l, err := network.ListenTrace(host)
	if err != nil {
		tr.NftNotes = append(tr.NftNotes, fmt.Sprintf("no nftables trace: %v", err))
		return nil, undo
	}
	return l, undo
}

// hostLinks names the host side's interfaces by index.
func hostLinks(sp network.Space) map[uint32]string {
	m := map[uint32]string{}
	for _, l := range sp.Links {
		m[uint32(l.Index)] = l.Name
	}
	return m
}

func (b *Box) neighbours(box, host network.NS) ([]string, error) {
	bn, err := network.Neighbours(box, "box "+b.Name)
	if err != nil {
		return nil, err
	}
	hn, err := network.Neighbours(host, "host side")
	return append(bn, hn...), err
}

// bridgeNetfilterNote says why packets between two boxes on one bridge
// do or do not meet the ip family's hooks on the host side.
func bridgeNetfilterNote(host network.NS) string {
	const switched = "packets between boxes on one bridge are switched, not routed: the host side does not forward them"
	v, err := host.Sysctl("net.bridge.bridge-nf-call-iptables")
	switch {
	case err != nil:
		return switched + ", and they meet no ip hook here (br_netfilter is not loaded)"
	case v == "1":
		return switched + "; they pass the ip family's prerouting, forward and postrouting hooks only because br_netfilter is loaded " +
			"and net.bridge.bridge-nf-call-iptables is 1 on the host side, so meeting the forward chain here is no sign of routing"
	}
	return switched + ", and they meet no ip hook here (net.bridge.bridge-nf-call-iptables is " + v + ")"
}
