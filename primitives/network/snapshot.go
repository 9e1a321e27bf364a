package network

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
)

// Link is one interface as rtnetlink reports it.
type Link struct {
	Index     int
	Name      string
	Kind      string // bridge, veth, device…
	State     string // operstate: up, down, unknown, lowerlayerdown
	Up        bool   // IFF_UP
	MTU       int
	Master    string // the bridge it is a port of
	Addrs     []string
	RxPackets uint64
	TxPackets uint64
	RxBytes   uint64
	TxBytes   uint64
}

// Route is one route of the main table.
type Route struct {
	Dst   string // "default" or a CIDR
	Gw    string
	Dev   string
	Src   string
	Scope string
}

// Space is one network namespace: the host side or a box's.
type Space struct {
	Name   string // "host" or the box's name
	Ino    uint64
	Links  []Link
	Routes []Route
}

// ReadSpace reads the namespace's links, their addresses and counters,
// and its main routing table (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE).
func ReadSpace(ns NS, name string) (Space, error) {
	sp := Space{Name: name, Ino: ns.Ino}
	h, err := ns.Handle()
	if err != nil {
		return sp, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return sp, fmt.Errorf("RTM_GETLINK (%s): %w", name, err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return sp, fmt.Errorf("RTM_GETADDR (%s): %w", name, err)
	}
	for _, l := range links {
		a := l.Attrs()
		x := Link{Index: a.Index, Name: a.Name, Kind: l.Type(), State: a.OperState.String(), Up: a.Flags&net.FlagUp != 0,
			MTU: a.MTU, Master: byIndex[a.MasterIndex]}
		if s := a.Statistics; s != nil {
			x.RxPackets, x.TxPackets, x.RxBytes, x.TxBytes = s.RxPackets, s.TxPackets, s.RxBytes, s.TxBytes
		}
		for _, ad := range addrs {
			if ad.LinkIndex == a.Index {
				x.Addrs = append(x.Addrs, ad.IPNet.String())
			}
		}
		sp.Links = append(sp.Links, x)
	}
	sort.Slice(sp.Links, func(i, j int) bool { return sp.Links[i].Index < sp.Links[j].Index })
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return sp, fmt.Errorf("RTM_GETROUTE (%s): %w", name, err)
	}
	for _, r := range routes {
		x := Route{Dst: "default", Dev: byIndex[r.LinkIndex], Scope: r.Scope.String()}
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 || !r.Dst.IP.IsUnspecified() {
				x.Dst = r.Dst.String()
			}
		}
		if r.Gw != nil {
			x.Gw = r.Gw.String()
		}
		if r.Src != nil {
			x.Src = r.Src.String()
		}
		sp.Routes = append(sp.Routes, x)
	}
	return sp, nil
}

// Link returns the link called name, if the space has one.
func (sp Space) Link(name string) (Link, bool) {
	for _, l := range sp.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// Bridge is a bridge a session made, with its subnet and gateway.
type Bridge struct {
	Name    string
	Subnet  string
	Gateway string
}

// Published is a published port and where it leads.
type Published struct {
	Box  string
	Port Port
	Addr string // the box's address
}

// Map is the network map: the host side, every box with a network
// namespace of its own, stepbox's bridges, which veth is whose, the rules
// of stepbox's table with their counters, and the published ports.
type Map struct {
	Host    Space
	Boxes   []Space
	Shared  []string // boxes still in the host's network namespace
	Gone    []string // boxes whose namespace could not be read: their processes are gone
	Bridges []Bridge
	Owners  map[string]string // host end of a veth → its box
	Rules   []Rule
	Ports   []Published
}
