package network

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// conntrackHandle opens a NETLINK_NETFILTER handle in the namespace, for
// conntrack's table.
func conntrackHandle(ns NS) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := ns.in(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("socket(AF_NETLINK, NETLINK_NETFILTER): %w", err)
	}
	return h, nil
}

// privateNets are the subnets a bridge's conntrack undo may name (RFC
// 1918): a ledger line that named the host's own network would drop the
// host's connections from conntrack.
var privateNets = []*net.IPNet{
	{IP: net.IPv4(10, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
	{IP: net.IPv4(172, 16, 0, 0).To4(), Mask: net.CIDRMask(12, 32)},
	{IP: net.IPv4(192, 168, 0, 0).To4(), Mask: net.CIDRMask(16, 32)},
}

// validFlowSubnet accepts a private IPv4 subnet of /16 to /30.
func validFlowSubnet(cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return fmt.Errorf("conntrack subnet %q is not an IPv4 subnet", cidr)
	}
	ones, _ := n.Mask.Size()
	for _, p := range privateNets {
		pOnes, _ := p.Mask.Size()
		if p.Contains(n.IP) && ones >= pOnes && ones >= 16 && ones <= 30 {
			return nil
		}
	}
	return fmt.Errorf("conntrack subnet %s is none a bridge of stepbox's has (a private /16 to /30)", cidr)
}

// DeleteFlows drops from the namespace's conntrack table every connection
// with an address in subnet, either way (IPCTNL_MSG_CT_DELETE, as
// `conntrack -D -s SUBNET` and `-d`, `-r`, `-q`): once the bridge is
// gone, they can only wait to expire (up to 5 days for an established
// TCP connection).
func DeleteFlows(ns NS, subnet *net.IPNet) error {
	h, err := conntrackHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	var filters []netlink.CustomConntrackFilter
	for _, tp := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP, netlink.ConntrackReplySrcIP, netlink.ConntrackReplyDstIP} {
		f := &netlink.ConntrackFilter{}
		if err := f.AddIPNet(tp, subnet); err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, filters...); err != nil {
		return fmt.Errorf("IPCTNL_MSG_CT_DELETE (conntrack -D, %s): %w", subnet, err)
	}
	return nil
}
