package network

import (
	"errors"
	"fmt"
	"net"
	"regexp"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Record writes an undo to the ledger; it is called before the resource
// it undoes is made.
type Record func(Undo) error

// DefaultBridge is the bridge's name when the learner gives none (Docker's
// is docker0).
const DefaultBridge = "stepbox0"

var linkNameRule = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,14}$`)

// ValidLinkName checks a link name: at most 15 bytes (IFNAMSIZ), and no
// '.' or '/', which would turn its sysctl path into another one.
func ValidLinkName(name string) error {
	if !linkNameRule.MatchString(name) {
		return fmt.Errorf("link name %q is not allowed: a letter, then up to 14 letters, digits, '-' or '_' (the kernel's limit is 15 bytes, IFNAMSIZ)", name)
	}
	return nil
}

// ParseSubnet parses an IPv4 CIDR such as 172.20.0.0/24 and requires room
// for a gateway and at least one box (prefix /8 to /30).
func ParseSubnet(s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("%q is not an IPv4 subnet in CIDR form, such as 172.20.0.0/24", s)
	}
	ones, _ := n.Mask.Size()
	if ones < 8 || ones > 30 {
		return nil, fmt.Errorf("subnet %s: the prefix must be /8 to /30, so that it holds the gateway and a box", s)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("subnet %s has host bits set: did you mean %s?", s, n)
	}
	for _, r := range unusableNets {
		if overlaps(r.n, n) {
			return nil, fmt.Errorf("subnet %s overlaps %s (%s), which no bridge can route as its own: use a unicast subnet, such as a private one in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", s, r.n, r.what)
		}
	}
	return n, nil
}

// unusableNets are the IPv4 ranges that are not unicast a bridge can
// hold (RFC 6890). The kernel lets a bridge take a gateway in them, but
// a box there is not reached as a box should be: the host side's local
// table, whose loopback routes SubnetInUse passes over, routes all of
// 127/8 to itself; multicast and class E are no unicast source; 0/8 and
// link-local must not be forwarded off their link (RFC 1122, RFC 3927).
var unusableNets = []struct {
	n    *net.IPNet
	what string
}{
	{&net.IPNet{IP: net.IPv4(0, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}, "\"this network\""},
	{&net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}, "loopback"},
	{&net.IPNet{IP: net.IPv4(169, 254, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}, "link-local"},
	{&net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}, "multicast"},
	{&net.IPNet{IP: net.IPv4(240, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}, "class E, reserved, and broadcast"},
}

// overlaps reports whether two subnets share an address.
func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// SubnetInUse says which route or address of the host side overlaps n,
// or "" when none does. Default routes (0/0) overlap everything and are
// skipped, as Docker skips them. Routes of every table are read (table
// unspec with RT_FILTER_TABLE; netlink's RouteList returns main's only):
// a subnet that policy routing sends by another table is in use too.
func SubnetInUse(h *netlink.Handle, n *net.IPNet) (string, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("RTM_GETROUTE: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		if r.Dst.IP.IsLoopback() || r.Dst.IP.To4() == nil {
			continue
		}
		if overlaps(r.Dst, n) {
			return "route " + r.Dst.String() + linkSuffix(h, r.LinkIndex), nil
		}
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("RTM_GETADDR: %w", err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() && overlaps(a.IPNet, n) {
			return "address " + a.IPNet.String() + linkSuffix(h, a.LinkIndex), nil
		}
	}
	return "", nil
}

func linkSuffix(h *netlink.Handle, index int) string {
	if l, err := h.LinkByIndex(index); err == nil {
		return " on " + l.Attrs().Name
	}
	return ""
}

// ChooseSubnet picks the first /24 of 172.20.0.0/16 that no route or
// address of the host side overlaps.
func ChooseSubnet(h *netlink.Handle) (*net.IPNet, error) {
	for i := 0; i < 256; i++ {
		n := &net.IPNet{IP: net.IPv4(172, 20, byte(i), 0).To4(), Mask: net.CIDRMask(24, 32)}
		used, err := SubnetInUse(h, n)
		if err != nil {
			return nil, err
		}
		if used == "" {
			return n, nil
		}
	}
	return nil, errors.New("net bridge: every /24 of 172.20.0.0/16 overlaps a route or address of the host side; name a subnet: net bridge NAME CIDR")
}

// Gateway is the subnet's first address, the bridge's own.
func Gateway(n *net.IPNet) net.IP { return NthAddr(n, 1) }

// NthAddr is the subnet's i-th address.
func NthAddr(n *net.IPNet, i int) net.IP {
	ip := n.IP.To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	v += uint32(i)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}

// AddBridge makes a bridge on the host side with the gateway address on
// it and sets it up, as Docker makes docker0: three rtnetlink requests.
func AddBridge(op *Op, host NS, name string, subnet *net.IPNet) error {
	h, err := host.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.LinkByName(name); err == nil {
		return fmt.Errorf("net bridge %s: a link called %s exists on the host side and is not stepbox's; pick another name", name, name)
	}
	if used, err := SubnetInUse(h, subnet); err != nil {
		return err
	} else if used != "" {
		return fmt.Errorf("net bridge %s %s: the subnet overlaps the host side's %s; pick another subnet", name, subnet, used)
	}
	// Recorded first, so undone last: once the bridge is gone, no new
	// connection of its subnet can start.
	// Only a private subnet: a ledger may not name the host's own network.
	if validFlowSubnet(subnet.String()) == nil {
		if err := op.record(Undo{What: UndoConntrack, NS: host, Name: subnet.String()}); err != nil {
			return err
		}
	}
	if err := op.record(Undo{What: UndoLink, NS: host, Name: name}); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	op.Shell("ip link add "+name+" type bridge", "ip link set "+name+" alias '"+LinkMark(op.Session)+"'")
	if err := op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, linkinfo={kind=\"bridge\"}, flags=NLM_F_CREATE|NLM_F_EXCL}", name),
		func() error { return h.LinkAdd(br) }); err != nil {
		return err
	}
	if err := setAlias(op, h, br); err != nil {
		return err
	}
	gw := &net.IPNet{IP: Gateway(subnet), Mask: subnet.Mask}
	op.Shell("ip addr add " + gw.String() + " dev " + name)
	if err := op.Do(fmt.Sprintf("RTM_NEWADDR{family=AF_INET, dev=%q, local=%s, prefixlen=%d}", name, gw.IP, prefixLen(subnet)),
		func() error { return h.AddrAdd(br, &netlink.Addr{IPNet: gw}) }); err != nil {
		return err
	}
	op.Shell("ip link set " + name + " up")
	return op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, flags=IFF_UP, change=IFF_UP}", name),
		func() error { return h.LinkSetUp(br) })
}

func prefixLen(n *net.IPNet) int { ones, _ := n.Mask.Size(); return ones }

// setAlias marks a link the session made (LinkMark): only such a link
// is deleted by a line of that session's ledger. The kernel takes
// IFLA_IFALIAS only on a link that exists (do_setlink), not in the
// request that creates it.
func setAlias(op *Op, h *netlink.Handle, l netlink.Link) error {
	if op.Session == "" {
		return fmt.Errorf("%s: no session to mark the link with", l.Attrs().Name)
	}
	mark := LinkMark(op.Session)
	return op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, ifalias=%q}", l.Attrs().Name, mark),
		func() error { return h.LinkSetAlias(l, mark) })
}
