package primitives

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"stepbox/primitives/network"
	"stepbox/primitives/step"
)

// NetRoute gives the box a default route via its bridge (`net route
// [GATEWAY]`).
func (b *Box) NetRoute(gw string) (*step.Step, error) { return b.netRoute(gw, false) }

// PlanNetRoute is NetRoute's plan.
func (b *Box) PlanNetRoute(gw string) (*step.Step, error) { return b.netRoute(gw, true) }

func (b *Box) netRoute(gw string, plan bool) (*step.Step, error) {
	s := b.session
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	box, err := b.boxNS("net route")
	if err != nil {
		return nil, err
	}
	if b.net.addr == nil {
		return nil, fmt.Errorf("net route: box %s's eth0 has no address yet, so no gateway is reachable; run `net addr` first", b.Name)
	}
	br, _ := s.netBridge(b.net.bridge)
	via := network.Gateway(br.subnet)
	if gw != "" {
		ip := net.ParseIP(gw).To4()
		switch {
		case ip == nil:
			return nil, fmt.Errorf("net route %s: not an IPv4 address such as %s", gw, via)
		case !b.net.addr.Contains(ip):
			return nil, fmt.Errorf("net route %s: the gateway must be on the box's subnet %s (the kernel would answer ENETUNREACH); on bridge %s it is the bridge's own address, %s", gw, br.subnet, br.name, via)
		case !ip.Equal(via):
			return nil, fmt.Errorf("net route %s: %s is not the bridge's address: only bridge %s forwards for the boxes on it, so the gateway is its address, %s (`net route` or `net route %s`)", gw, gw, br.name, via, via)
		}
	}
	// The kernel's table decides, not stepbox's memory: a route may have
	// been deleted or added with `exec ip route`.
	old, dev, has, err := network.DefaultRoute(box)
	if err != nil {
		return nil, fmt.Errorf("net route: %w", err)
	}
	if has && old.Equal(via) {
		return nil, fmt.Errorf("net route: box %s has its default route via %s already", b.Name, via)
	}
	if has && dev != network.BoxIf {
		return nil, fmt.Errorf("net route: box %s has a default route via %s dev %s, which stepbox did not make; remove it first with `exec ip route del default`", b.Name, old, dev)
	}
	st := &step.Step{
		Command: strings.TrimSpace("net route " + gw),
		Summary: fmt.Sprintf("gave box %s a default route via %s: packets for anywhere off its subnet go to the bridge", b.Name, via),
		Man:     []string{"rtnetlink(7)", "ip-route(8)"},
		Undo:    "the route goes with eth0 when the veth pair or the box's network namespace is deleted",
	}
	if has {
		st.Summary = fmt.Sprintf("replaced box %s's default route via %s with one via the bridge's address %s", b.Name, old, via)
		st.Notes = append(st.Notes, fmt.Sprintf("replaced box %s's default route via %s, which nothing on bridge %s answers, with one via %s", b.Name, old, br.name, via))
	}
	if err := network.AddDefaultRoute(&network.Op{St: st, Plan: plan}, box, via, has); err != nil {
		return st, err
	}
	return st, nil
}

// netSysctl sets a sysctl of the host side, recording its old value in
// the session's ledger first; a value already right is left alone.
func (s *Session) netSysctl(op *network.Op, host network.NS, name, want string) error {
	old, err := host.Sysctl(name)
	if err != nil {
		return fmt.Errorf("read sysctl %s: %w", name, err)
	}
	if old == want || s.net.sysctls[name] {
		op.St.Notes = append(op.St.Notes, fmt.Sprintf("%s is %s already; left as it is", name, old))
		return nil
	}
	if !op.Plan {
		if err := s.recordSession(network.Undo{What: network.UndoSysctl, NS: host, Name: name, Value: old}); err != nil {
			return err
		}
	}
	op.Shell("sysctl -w " + name + "=" + want)
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := op.Do(fmt.Sprintf("write(open(%q), %q)", path, want), func() error { return host.SetSysctl(name, want) }); err != nil {
		return err
	}
	if !op.Plan {
		if s.net.sysctls == nil {
			s.net.sysctls = map[string]bool{}
		}
		s.net.sysctls[name] = true
	}
	op.St.Notes = append(op.St.Notes, fmt.Sprintf("%s was %s; teardown writes %s back", name, old, old))
	return nil
}

// netTable makes stepbox's nf_tables table once per session, refusing
// one that another session made.
func (s *Session) netTable(op *network.Op, host network.NS) error {
	if s.net.table {
		return nil
	}
	exists, err := network.TableExists(host)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("the host side has a table ip %s that is not this session's: another stepbox session runs, or a crashed one left it (`stepbox cleanup` removes a crashed session's)", network.Table)
	}
	op.Rec = s.recordSession
	if err := network.AddTable(op, host); err != nil {
		return err
	}
	if !op.Plan {
		s.net.table = true
	}
	return nil
}

// NetNAT turns on forwarding and masquerade for a bridge's subnet (`net
// nat [BRIDGE]`).
func (s *Session) NetNAT(bridge string) (*step.Step, error) { return s.netNAT(bridge, false) }

// PlanNetNAT is NetNAT's plan.
func (s *Session) PlanNetNAT(bridge string) (*step.Step, error) { return s.netNAT(bridge, true) }

func (s *Session) netNAT(bridge string, plan bool) (*step.Step, error) {
	if s.closing.Load() {
		return nil, fmt.Errorf("net nat: %w", errClosing)
	}
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	br, ok := s.netBridge(bridge)
	if !ok {
		return nil, fmt.Errorf("net nat %s: there is no such bridge; make one with `net bridge`", bridge)
	}
	if s.net.nat[br.name] {
		return nil, fmt.Errorf("net nat: bridge %s has masquerade already", br.name)
	}
	host, err := s.netHost()
	if err != nil {
		return nil, err
	}
	st := &step.Step{
		Command: strings.TrimSpace("net nat " + bridge),
		Summary: fmt.Sprintf("the host side now forwards, and rewrites the source of what leaves %s for elsewhere to its own address (masquerade), so replies find their way back", br.subnet),
		Man:     []string{"nft(8)", "proc_sys_net(5)"},
		Undo:    "teardown deletes table ip " + network.Table + " (`nft delete table ip " + network.Table + "`) and writes back each sysctl's old value",
	}
	st.Notes = append(st.Notes, network.HostNotes(host)...)
	op := &network.Op{St: st, Plan: plan, Session: s.ID}
	if err := s.netSysctl(op, host, "net.ipv4.ip_forward", "1"); err != nil {
		return st, err
	}
	if err := s.netTable(op, host); err != nil {
		return st, err
	}
	op.Rec = s.recordSession
	if err := network.AddNAT(op, host, br.name, br.subnet); err != nil {
		return st, err
	}
	if !plan {
		if s.net.nat == nil {
			s.net.nat = map[string]bool{}
		}
		s.net.nat[br.name] = true
	}
	return st, nil
}

// ParsePort reads HOSTPORT:BOXPORT[/udp].
func ParsePort(spec string) (network.Port, error) {
	p := network.Port{Proto: "tcp"}
	ports, proto, hasProto := strings.Cut(spec, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("net publish %s: the protocol is tcp or udp, not %q", spec, proto)
		}
		p.Proto = proto
	}
	hs, bs, ok := strings.Cut(ports, ":")
	h, err1 := strconv.ParseUint(hs, 10, 16)
	bp, err2 := strconv.ParseUint(bs, 10, 16)
	if !ok || err1 != nil || err2 != nil || h == 0 || bp == 0 {
		return p, fmt.Errorf("net publish %s: write HOSTPORT:BOXPORT[/udp] with ports 1 to 65535, such as 8080:80", spec)
	}
	p.Host, p.Box = uint16(h), uint16(bp)
	return p, nil
}

// NetPublish publishes a port of the box on the host side (`net publish
// HOSTPORT:BOXPORT[/udp]`).
func (b *Box) NetPublish(spec string) (*step.Step, error) { return b.netPublish(spec, false) }

// PlanNetPublish is NetPublish's plan.
func (b *Box) PlanNetPublish(spec string) (*step.Step, error) { return b.netPublish(spec, true) }

func (b *Box) netPublish(spec string, plan bool) (*step.Step, error) {
	s := b.session
	if s.closing.Load() {
		return nil, fmt.Errorf("net publish: %w", errClosing)
	}
	p, err := ParsePort(spec)
	if err != nil {
		return nil, err
	}
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if b.net.addr == nil {
		return nil, fmt.Errorf("net publish %s: box %s has no address to send the port to; run `net veth` and `net addr` first", spec, b.Name)
	}
	for _, o := range s.Boxes() {
		for _, q := range o.net.ports {
			if q.Host == p.Host && q.Proto == p.Proto {
				return nil, fmt.Errorf("net publish %s: host port %d/%s is published already, to box %s", spec, p.Host, p.Proto, o.Name)
			}
		}
	}
	host, err := s.netHost()
	if err != nil {
		return nil, err
	}
	if used, err := network.PortInUse(host, p.Proto, p.Host); err != nil {
		return nil, err
	} else if used {
		return nil, fmt.Errorf("net publish %s: a program on the host side is bound to port %d/%s already; pick another host port", spec, p.Host, p.Proto)
	}
	br, _ := s.netBridge(b.net.bridge)
	st := &step.Step{
		Command: "net publish " + spec,
		Summary: fmt.Sprintf("port %d/%s on every address of the host side now leads to %s:%d in box %s (DNAT); from the host itself too (127.0.0.1, route_localnet on %s) and from other boxes (hairpin masquerade)",
			p.Host, p.Proto, b.net.addr.IP, p.Box, b.Name, br.name),
		Man:  []string{"nft(8)", "proc_sys_net(5)"},
		Undo: "teardown deletes the rules commented \"" + network.PublishTag(b.Name, p) + "\" when the box goes, and table ip " + network.Table + " with the session",
	}
	op := &network.Op{St: st, Plan: plan, Session: s.ID}
	if err := s.netSysctl(op, host, "net.ipv4.ip_forward", "1"); err != nil {
		return st, err
	}
	if err := s.netSysctl(op, host, "net.ipv4.conf."+br.name+".route_localnet", "1"); err != nil {
		return st, err
	}
	if err := s.netTable(op, host); err != nil {
		return st, err
	}
	op.Rec = b.recordBox
	if err := network.AddPublish(op, host, b.Name, br.name, br.subnet, b.net.addr.IP, p); err != nil {
		return st, err
	}
	if !plan {
		b.net.ports = append(b.net.ports, p)
	}
	return st, nil
}
