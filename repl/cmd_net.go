package repl

import (
	"fmt"

	"stepbox/primitives/step"
	"stepbox/viz"
)

// arg returns the i-th argument or "".
func arg(c *Call, i int) string {
	if i < len(c.Args) {
		return c.Args[i]
	}
	return ""
}

// netStep runs a network step, prints its record and the part of the map
// it changed.
func (sh *Shell) netStep(st *step.Step, err error, focus []string, format string, args ...any) error {
	sh.printStep(st)
	if err != nil {
		return err
	}
	// A note names what the host side or a box has (an nft table, a
	// link, an address read back): escaped as the step panel's notes are.
	for _, n := range st.Notes {
		sh.say("  %s", sh.Theme.Dim.Render(viz.Escape(n)))
	}
	sh.ok(format, args...)
	return sh.showNet(focus)
}

func (sh *Shell) showNet(focus []string) error {
	m, err := sh.Session.NetMapOf(focus)
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.NetPanel(m, focus, sh.Width, sh.Theme))
	return nil
}

func init() {
	show := &Command{
		Name: "show", Usage: "net [show]",
		Summary: "the network map: host side and boxes, links, addresses, routes, counters, stepbox's nft rules, published ports",
		Kernel:  "RTM_GETLINK, RTM_GETADDR and RTM_GETROUTE in each network namespace; NFT_MSG_GETRULE for stepbox's table (counters included)",
		Example: "net show", Man: "rtnetlink(7), nft(8)",
		Run: func(sh *Shell, c *Call) error { return sh.showNet(nil) },
	}
	register(&Command{
		Name: "net", Group: "network", Usage: "net bridge|veth|addr|route|nat|publish|show",
		Summary: "wire boxes together as Docker's bridge driver does: bridge, veth, address, route, NAT, published ports",
		Kernel:  "rtnetlink makes links, addresses and routes; nf_tables rules masquerade and DNAT; every step is undone at teardown",
		Example: "net bridge", Man: "rtnetlink(7), veth(4), nft(8)",
		Run: show.Run,
		Sub: []*Command{
			{
				Name: "bridge", Usage: "net bridge [NAME] [CIDR]", MaxArgs: 2, Recorded: true,
				Summary: "a bridge on the host side with the gateway address (default stepbox0 and a free /24)",
				Kernel:  "RTM_NEWLINK kind bridge, RTM_NEWADDR for the gateway, RTM_NEWLINK IFF_UP",
				Example: "net bridge stepbox0 172.20.0.0/24", Man: "rtnetlink(7), ip-link(8)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) {
					return sh.Session.PlanNetBridge(arg(c, 0), arg(c, 1))
				},
				Run: func(sh *Shell, c *Call) error {
					st, err := sh.Session.NetBridge(arg(c, 0), arg(c, 1))
					return sh.netStep(st, err, []string{"host"}, "bridge made on the host side")
				},
			},
			{
				Name: "veth", Usage: "net veth [BRIDGE]", MaxArgs: 1, NeedsBox: true, Recorded: true,
				Summary: "a veth pair: one end on the bridge, the other the box's eth0 (needs `unshare net`)",
				Kernel:  "RTM_NEWLINK kind veth with the peer made in the box's namespace (IFLA_NET_NS_FD), master the bridge; both ends up",
				Example: "net veth", Man: "veth(4), rtnetlink(7)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanNetVeth(arg(c, 0)) },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.NetVeth(arg(c, 0))
					return sh.netStep(st, err, []string{"host", b.Name}, "box %s has eth0, its other end on the bridge", b.Name)
				},
			},
			{
				Name: "addr", Usage: "net addr [CIDR]", MaxArgs: 1, NeedsBox: true, Recorded: true,
				Summary: "an address on the box's eth0 (default: the next free one of the bridge's subnet)",
				Kernel:  "RTM_NEWADDR in the box's namespace; the kernel adds the subnet's route",
				Example: "net addr", Man: "rtnetlink(7), ip-address(8)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanNetAddr(arg(c, 0)) },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.NetAddr(arg(c, 0))
					return sh.netStep(st, err, []string{b.Name}, "box %s has an address", b.Name)
				},
			},
			{
				Name: "route", Usage: "net route [GATEWAY]", MaxArgs: 1, NeedsBox: true, Recorded: true,
				Summary: "the box's default route via the bridge",
				Kernel:  "RTM_NEWROUTE 0.0.0.0/0 via the gateway in the box's namespace",
				Example: "net route", Man: "rtnetlink(7), ip-route(8)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanNetRoute(arg(c, 0)) },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.NetRoute(arg(c, 0))
					return sh.netStep(st, err, []string{b.Name}, "box %s has a default route", b.Name)
				},
			},
			{
				Name: "nat", Usage: "net nat [BRIDGE]", MaxArgs: 1, Recorded: true,
				Summary: "ip_forward and masquerade for the bridge's subnet: boxes reach what the host reaches",
				Kernel:  "writes net.ipv4.ip_forward; nf_tables: stepbox's table, a masquerade rule in postrouting, counted accepts in forward",
				Example: "net nat", Man: "nft(8), proc_sys_net(5)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Session.PlanNetNAT(arg(c, 0)) },
				Run: func(sh *Shell, c *Call) error {
					st, err := sh.Session.NetNAT(arg(c, 0))
					return sh.netStep(st, err, []string{"host"}, "masquerade on")
				},
			},
			{
				Name: "publish", Usage: "net publish HOSTPORT:BOXPORT[/udp]", MinArgs: 1, MaxArgs: 1, NeedsBox: true, Recorded: true,
				Summary: "a host port leads to the box: DNAT in prerouting and output, route_localnet, hairpin masquerade",
				Kernel:  "nf_tables dnat rules (fib daddr type local), masquerade for 127.0.0.1 and box-to-box; net.ipv4.conf.BRIDGE.route_localnet=1",
				Example: "net publish 8080:80", Man: "nft(8), proc_sys_net(5)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanNetPublish(c.Args[0]) },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.NetPublish(c.Args[0])
					return sh.netStep(st, err, []string{"host"}, "published %s to box %s", c.Args[0], b.Name)
				},
			},
			{
				Name: "trace", Usage: "net trace CMD…", MinArgs: 1, MaxArgs: -1, RawArgs: true, NeedsBox: true,
				Summary: "run one command in the box and follow its packets: routes, counters hop by hop, rules, ARP, conntrack, and each chain and rule a packet met (nftables trace)",
				Kernel:  "reads RTM_GETROUTE, link statistics, rule counters, RTM_GETNEIGH and conntrack before and after the command; while it runs, chains of table ip stepbox set `meta nftrace` on the box's packets and NFNLGRP_NFTRACE reports every chain and rule they meet",
				Example: "net trace ping -c1 172.20.0.3", Man: "ip-route(8), ip-neighbour(8), conntrack(8), nft(8)",
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					exec, args, err := lookup(append([]string{"exec"}, c.Args...))
					if err != nil {
						return err
					}
					tr, err := b.NetTrace(c.Args, func() error { return exec.Run(sh, &Call{Args: args}) })
					if !sh.explain {
						tr.NftShell = nil // the trace's own set-up, shown with `explain on`
					}
					fmt.Fprintln(sh.Out, viz.NetTracePanel(tr, sh.Width, sh.Theme))
					sh.web.traced(tr)
					return err
				},
			},
			show,
		},
	})
}
