package network

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
		"ip link set "+hostEnd+" alias '"+LinkMark(op.Session)+"'",
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

// DefaultRoute is the box's default route as the kernel has it
// (RTM_GETROUTE, main table): its gateway and device, or ok false when
// the box has none.
func DefaultRoute(box NS) (gw net.IP, dev string, ok bool, err error) {
	bh, err := box.Handle()
	if err != nil {
		return nil, "", false, err
	}
	defer bh.Close()
	routes, err := bh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, "", false, fmt.Errorf("RTM_GETROUTE in the box: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.Equal(net.IPv4zero) {
			continue
		}
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if l, err := bh.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		return r.Gw, dev, true, nil
	}
	return nil, "", false, nil
}

// AddDefaultRoute gives the box a default route via gw (RTM_NEWROUTE);
// with replace, it takes the place of the box's default route
// (NLM_F_REPLACE, `ip route replace`).
func AddDefaultRoute(op *Op, box NS, gw net.IP, replace bool) error {
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
	verb, flags, send := "add", "NLM_F_CREATE|NLM_F_EXCL", bh.RouteAdd
	if replace {
		verb, flags, send = "replace", "NLM_F_CREATE|NLM_F_REPLACE", bh.RouteReplace
	}
	op.Shell("nsenter -t $BOX_PID -n ip route " + verb + " default via " + gw.String() + " dev " + BoxIf)
	err = op.Do(fmt.Sprintf("RTM_NEWROUTE{family=AF_INET, dst=0.0.0.0/0, gateway=%s, oif=%q, table=RT_TABLE_MAIN, flags=%s} in the box", gw, BoxIf, flags),
		func() error { return send(r) })
	var se *step.SyscallError
	if errors.As(err, &se) && errors.Is(se.Err, errNetUnreach()) {
		return fmt.Errorf("net route %s: %w: the gateway is not on any subnet of the box's; give eth0 an address first with `net addr`", gw, err)
	}
	return err
}
