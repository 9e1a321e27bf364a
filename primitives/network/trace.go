package network

import (
	"fmt"
	"net"
	"slices"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Trace is what one command's packets did, read from the kernel before
// and after it ran: the route lookups for its destination, which
// interfaces counted packets (the path veth → bridge → veth), which of
// stepbox's rules counted them, the neighbour (ARP) entries made or
// refreshed, and the connections conntrack tracked, with their NAT.
type Trace struct {
	Box    string
	Dst    string   // the destination found in the command, if any
	Routes []string // RTM_GETROUTE answers, box first
	Hops   []Hop
	Rules  []RuleDelta
	Neigh  []string
	Flows  []string
	// nftables trace: the packets the trace chains marked and the chains
	// and rules each met, or why there are none; the nft commands that
	// added and removed the trace chains.
	Packets  []TracedPacket
	NftNotes []string
	NftShell []string
}

// Hop is one interface that counted packets while the command ran.
type Hop struct {
	Space, Link string
	Rx, Tx      uint64
	Note        string // why a hop that counted nothing is on the path
}

// RuleDelta is one rule of stepbox's table that counted packets.
type RuleDelta struct {
	Chain, Text string
	Packets     uint64
}

// RouteLookup asks the namespace's routing table where dst goes
// (RTM_GETROUTE, as `ip route get`).
func RouteLookup(ns NS, name string, dst net.IP) (string, error) {
	h, err := ns.Handle()
	if err != nil {
		return "", err
	}
	defer h.Close()
	rs, err := h.RouteGet(dst)
	if err != nil {
		return fmt.Sprintf("%s: ip route get %s: %v", name, dst, err), nil
	}
	var out string
	for _, r := range rs {
		line := fmt.Sprintf("%s: ip route get %s → ", name, dst)
		if r.Gw != nil {
			line += "via " + r.Gw.String() + " "
		}
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			line += "dev " + l.Attrs().Name
		}
		if r.Src != nil {
			line += " src " + r.Src.String()
		}
		out = line
	}
	return out, nil
}

// Neighbours lists the namespace's IPv4 neighbour entries (RTM_GETNEIGH,
// as `ip neigh`).
func Neighbours(ns NS, name string) ([]string, error) {
	h, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ns4, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("RTM_GETNEIGH (%s): %w", name, err)
	}
	var out []string
	for _, n := range ns4 {
		dev := ""
		if l, err := h.LinkByIndex(n.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		out = append(out, fmt.Sprintf("%s: %s lladdr %s dev %s %s", name, n.IP, n.HardwareAddr, dev, neighState(n.State)))
	}
	return out, nil
}

var neighStates = map[int]string{
	netlink.NUD_REACHABLE: "REACHABLE", netlink.NUD_STALE: "STALE", netlink.NUD_DELAY: "DELAY", netlink.NUD_PROBE: "PROBE",
	netlink.NUD_FAILED: "FAILED", netlink.NUD_INCOMPLETE: "INCOMPLETE", netlink.NUD_PERMANENT: "PERMANENT",
}

func neighState(s int) string {
	if n, ok := neighStates[s]; ok {
		return n
	}
	return fmt.Sprintf("state %#x", s)
}

// Flow is one connection conntrack tracks: as a line, with the NAT the
// reply direction shows, and the seconds left before it expires.
type Flow struct {
	Line    string
	Timeout uint32
}

// Flows lists the connections conntrack tracks in the namespace that
// involve any of addrs (IPCTNL_MSG_CT_GET, as `conntrack -L`).
func Flows(ns NS, addrs ...net.IP) ([]Flow, error) {
	h, err := conntrackHandle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("IPCTNL_MSG_CT_GET: %w", err)
	}
	var out []Flow
	for _, f := range flows {
		if !involves(f, addrs) {
			continue
		}
		o, r := f.Forward, f.Reverse
		line := fmt.Sprintf("%s %s:%d → %s:%d, reply %s:%d → %s:%d", protoName(o.Protocol),
			o.SrcIP, o.SrcPort, o.DstIP, o.DstPort, r.SrcIP, r.SrcPort, r.DstIP, r.DstPort)
		if !r.SrcIP.Equal(o.DstIP) || r.SrcPort != o.DstPort {
			line += fmt.Sprintf(" · DNAT to %s:%d", r.SrcIP, r.SrcPort)
		}
		if !r.DstIP.Equal(o.SrcIP) {
			line += fmt.Sprintf(" · source NAT (masquerade) to %s", r.DstIP)
		}
		out = append(out, Flow{Line: line, Timeout: f.TimeOut})
	}
	return out, nil
}

// FreshFlows is what a command did to conntrack: the entries of after
// that before lacked, or whose timeout a packet reset while it ran; and
// how many older entries it left alone.
func FreshFlows(before, after []Flow) (fresh []string, older int) {
	was := map[string]uint32{}
	for _, f := range before {
		was[f.Line] = f.Timeout
	}
	for _, f := range after {
		if t, ok := was[f.Line]; ok && f.Timeout <= t {
			older++
			continue
		}
		fresh = append(fresh, f.Line)
	}
	return fresh, older
}

func involves(f *netlink.ConntrackFlow, addrs []net.IP) bool {
	for _, a := range addrs {
		for _, ip := range []net.IP{f.Forward.SrcIP, f.Forward.DstIP, f.Reverse.SrcIP, f.Reverse.DstIP} {
			if a != nil && a.Equal(ip) {
				return true
			}
		}
	}
	return false
}

func protoName(p uint8) string {
	if n, ok := map[uint8]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMP: "icmp"}[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}

// Deltas fills the trace's hops and rules from two maps, before and after.
func (tr *Trace) Deltas(before, after Map) {
	prev := map[string]Link{}
	for _, sp := range append([]Space{before.Host}, before.Boxes...) {
		for _, l := range sp.Links {
			prev[sp.Name+"/"+l.Name] = l
		}
	}
	moved := func(sp Space, l Link) (Hop, bool) {
		p := prev[sp.Name+"/"+l.Name]
		h := Hop{Space: sp.Name, Link: l.Name, Rx: l.RxPackets - p.RxPackets, Tx: l.TxPackets - p.TxPackets}
		return h, l.RxPackets != p.RxPackets || l.TxPackets != p.TxPackets
	}
	// The box's links first, then the host side's, then the other boxes':
	// the order a packet leaving the box meets them.
	for _, sp := range after.Boxes {
		if sp.Name == tr.Box {
			for _, l := range sp.Links {
				if h, ok := moved(sp, l); ok {
					tr.Hops = append(tr.Hops, h)
				}
			}
		}
	}
	tr.Hops = append(tr.Hops, hostHops(after, tr.Box, moved)...)
	var others []Hop
	for _, sp := range after.Boxes {
		if sp.Name != tr.Box {
			for _, l := range sp.Links {
				if h, ok := moved(sp, l); ok {
					others = append(others, h)
				}
			}
		}
	}
	// The other boxes in the order of their veths on the host side.
	rank := map[string]int{}
	for i, h := range tr.Hops {
		if owner := after.Owners[h.Link]; owner != "" && h.Space == after.Host.Name {
			rank[owner] = i + 1
		}
	}
	sort.SliceStable(others, func(i, j int) bool { return rank[others[i].Space] < rank[others[j].Space] })
	tr.Hops = append(tr.Hops, others...)
	counted := map[uint64]uint64{}
	for _, r := range before.Rules {
		counted[r.Handle] = r.Packets
	}
	for _, r := range after.Rules {
		if d := r.Packets - counted[r.Handle]; d > 0 {
			tr.Rules = append(tr.Rules, RuleDelta{Chain: r.Chain, Text: r.Text, Packets: d})
		}
	}
}

// hostHops orders the host side's links that counted packets along the
// wire: the box's own veth end, the bridge it is a port of (listed even
// when it counted nothing: a bridge counts only frames for the host side
// itself, not those it switches from port to port), the other veths on
// that bridge, then the rest.
func hostHops(after Map, box string, counted func(Space, Link) (Hop, bool)) []Hop {
	host := after.Host
	own := ""
	for _, l := range host.Links {
		if after.Owners[l.Name] == box {
			own = l.Name
		}
	}
	ownLink, _ := host.Link(own)
	rank := func(l Link) int {
		switch {
		case own != "" && l.Name == own:
			return 0
		case ownLink.Master != "" && l.Name == ownLink.Master:
			return 1
		case ownLink.Master != "" && l.Master == ownLink.Master:
			return 2
		}
		return 3
	}
	links := slices.Clone(host.Links)
	sort.SliceStable(links, func(i, j int) bool { return rank(links[i]) < rank(links[j]) })
	var hops []Hop
	for _, l := range links {
		h, ok := counted(host, l)
		if !ok && rank(l) == 1 && len(hops) > 0 {
			h.Note = "switched it (a bridge counts only frames for the host side)"
			ok = true
		}
		if ok {
			hops = append(hops, h)
		}
	}
	return hops
}
