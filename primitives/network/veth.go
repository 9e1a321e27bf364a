package network

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"stepbox/primitives/step"
)

// BoxIf is the name of the box's end of its veth pair, as in Docker.
const BoxIf = "eth0"

// AddVeth makes a veth pair whose host end, hostEnd, joins the bridge and
// whose other end is made directly inside the box's namespace as eth0
// (IFLA_NET_NS_FD on the peer: one request instead of a create and a
// move), then sets both ends and the box's lo up.
func AddVeth(op *Op, host, box NS, bridge, hostEnd string) error {
	h, err := host.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("net veth: no bridge %s on the host side; make it with `net bridge` first", bridge)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return fmt.Errorf("net veth: %s is a %s, not a bridge", bridge, br.Type())
	}
	if _, err := h.LinkByName(hostEnd); err == nil {
		return fmt.Errorf("net veth: a link called %s exists already on the host side", hostEnd)
	}
	bh, err := box.Handle()
	if err != nil {
		return err
	}
	defer bh.Close()
	if _, err := bh.LinkByName(BoxIf); err == nil {
		return fmt.Errorf("net veth: the box has an %s already; a box gets one veth pair", BoxIf)
	}
	boxFd, err := box.open()
	if err != nil {
		return err
	}
	defer boxFd.Close()
	if err := op.record(Undo{What: UndoLink, NS: host, Name: hostEnd}); err != nil {
		return err
	}
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostEnd, MasterIndex: br.Attrs().Index},
		PeerName:      BoxIf,
		PeerNamespace: netlink.NsFd(int(boxFd)),
	}
	op.Shell(
		"ip link add "+hostEnd+" type veth peer name "+BoxIf+" netns $BOX_PID",
		"ip link set "+hostEnd+" alias "+LinkAlias,
		"ip link set "+hostEnd+" master "+bridge+" up")
	if err := op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, master=%q, linkinfo={kind=\"veth\", data={peer={ifname=%q, net_ns_fd=open(%q)}}}, flags=NLM_F_CREATE|NLM_F_EXCL}",
		hostEnd, bridge, BoxIf, box.Path), func() error { return h.LinkAdd(v) }); err != nil {
		return err
	}
	if err := setAlias(op, h, v); err != nil {
		return err
	}
	if err := op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, flags=IFF_UP, change=IFF_UP}", hostEnd), func() error { return h.LinkSetUp(v) }); err != nil {
		return err
	}
	op.Shell("nsenter -t $BOX_PID -n ip link set lo up", "nsenter -t $BOX_PID -n ip link set "+BoxIf+" up")
	for _, name := range []string{"lo", BoxIf} {
		if err := op.Do(fmt.Sprintf("RTM_NEWLINK{ifname=%q, flags=IFF_UP, change=IFF_UP} in the box", name), func() error {
			l, err := bh.LinkByName(name)
			if err != nil {
				return err
			}
			return bh.LinkSetUp(l)
		}); err != nil {
			return err
		}
	}
	return nil
}

// AddAddr puts addr on the box's eth0 (RTM_NEWADDR). The kernel adds the
// subnet's route itself (proto kernel scope link).
func AddAddr(op *Op, box NS, addr *net.IPNet) error {
	bh, err := box.Handle()
	if err != nil {
		return err
	}
	defer bh.Close()
	l, err := bh.LinkByName(BoxIf)
	if err != nil {
		return fmt.Errorf("net addr: the box has no %s; run `net veth` first", BoxIf)
	}
	op.Shell("nsenter -t $BOX_PID -n ip addr add " + addr.String() + " dev " + BoxIf)
	return op.Do(fmt.Sprintf("RTM_NEWADDR{family=AF_INET, dev=%q, local=%s, prefixlen=%d} in the box", BoxIf, addr.IP, prefixLen(addr)),
		func() error { return bh.AddrAdd(l, &netlink.Addr{IPNet: addr}) })
}

// AddDefaultRoute gives the box a default route via gw (RTM_NEWROUTE).
func AddDefaultRoute(op *Op, box NS, gw net.IP) error {
	bh, err := box.Handle()
	if err != nil {
		return err
	}
	defer bh.Close()
	l, err := bh.LinkByName(BoxIf)
	if err != nil {
		return fmt.Errorf("net route: the box has no %s; run `net veth` first", BoxIf)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	op.Shell("nsenter -t $BOX_PID -n ip route add default via " + gw.String() + " dev " + BoxIf)
	err = op.Do(fmt.Sprintf("RTM_NEWROUTE{family=AF_INET, dst=0.0.0.0/0, gateway=%s, oif=%q, table=RT_TABLE_MAIN, flags=NLM_F_CREATE|NLM_F_EXCL} in the box", gw, BoxIf),
		func() error { return bh.RouteAdd(r) })
	var se *step.SyscallError
	if errors.As(err, &se) && errors.Is(se.Err, errNetUnreach()) {
		return fmt.Errorf("net route %s: %w: the gateway is not on any subnet of the box's; give eth0 an address first with `net addr`", gw, err)
	}
	return err
}
