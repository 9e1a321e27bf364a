package primitives

import (
	"fmt"
	"net"
	"regexp"
	"slices"

	"stepbox/primitives/network"
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
	runErr := run()
	after, err := s.NetMap()
	if err != nil {
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
	addrs := []net.IP{dst}
	if b.net.addr != nil {
		addrs = append(addrs, b.net.addr.IP)
	}
	if tr.Flows, err = network.Flows(host, addrs...); err != nil {
		tr.Flows = []string{fmt.Sprintf("(conntrack could not be read: %v)", err)}
	}
	return tr, runErr
}

func (b *Box) neighbours(box, host network.NS) ([]string, error) {
	bn, err := network.Neighbours(box, "box "+b.Name)
	if err != nil {
		return nil, err
	}
	hn, err := network.Neighbours(host, "host side")
	return append(bn, hn...), err
}
