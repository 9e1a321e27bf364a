package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"stepbox/primitives/network"
	"stepbox/primitives/step"
)

// The network steps: Docker's bridge driver, one step at a time. The
// session owns the host side (bridges, stepbox's nf_tables table, the
// sysctls it changed) in its own ledger; a box owns its veth pair and its
// published ports in the box's ledger. Everything is written to a ledger
// before it is made.

// netSession is the session's network state.
type netSession struct {
	mu      sync.Mutex // one network step at a time
	host    *network.NS
	bridges []netBridge
	table   bool
	sysctls map[string]bool // changed by this session, recorded once
	nat     map[string]bool // bridges with masquerade
}

type netBridge struct {
	name   string
	subnet *net.IPNet
}

// boxNet is a box's part of the network.
type boxNet struct {
	bridge  string
	hostEnd string
	addr    *net.IPNet
	ports   []network.Port
}

// netHost is the host side, fixed at the session's first network step.
func (s *Session) netHost() (network.NS, error) {
	if s.net.host != nil {
		return *s.net.host, nil
	}
	h, err := network.HostNS()
	if err != nil {
		return h, fmt.Errorf("net: the host side's network namespace (%s): %w", network.HostNSEnv, err)
	}
	s.net.host = &h
	return h, nil
}

func (s *Session) netBridge(name string) (netBridge, bool) {
	for _, b := range s.net.bridges {
		if b.name == name || name == "" {
			return b, true
		}
	}
	return netBridge{}, false
}

func netResource(u network.Undo) (Resource, error) {
	raw, err := json.Marshal(u)
	if err != nil {
		return Resource{}, err
	}
	return Resource{Kind: ResNet, Net: raw, Note: u.What + " " + u.Name + " " + u.Tag}, nil
}

// recordSession writes an undo to the session's ledger.
func (s *Session) recordSession(u network.Undo) error {
	r, err := netResource(u)
	if err != nil {
		return err
	}
	l, err := openLedger(s.Dir)
	if err != nil {
		return err
	}
	return l.Add(r)
}

// recordBox writes an undo to the box's ledger.
func (b *Box) recordBox(u network.Undo) error {
	r, err := netResource(u)
	if err != nil {
		return err
	}
	return b.ledger.Add(r)
}

// netOwner reads, before any of the ledger's network lines is undone,
// what the kernel holds of session: the lines then undo only what it
// shows is the session's own (network.Owner).
func netOwner(res []Resource, session string) *network.Owner {
	var undos []network.Undo
	for _, r := range res {
		var u network.Undo
		if r.Kind == ResNet && json.Unmarshal(r.Net, &u) == nil {
			undos = append(undos, u)
		}
	}
	return network.NewOwner(session, undos)
}

// undoNet carries out a ledger's network line for the session o; what
// the kernel shows is not the session's own is refused, said and left.
func undoNet(r Resource, o *network.Owner) error {
	var u network.Undo
	if err := json.Unmarshal(r.Net, &u); err != nil {
		return fmt.Errorf("ledger: network line %s: %w", r.Net, err)
	}
	err := u.Do(o)
	if errors.As(err, new(network.Refused)) {
		return ledgerRefused{err}
	}
	return err
}

// NetBridge makes a bridge on the host side (`net bridge [NAME] [CIDR]`).
func (s *Session) NetBridge(name, cidr string) (*step.Step, error) {
	return s.netBridgeStep(name, cidr, false)
}

// PlanNetBridge is NetBridge's plan.
func (s *Session) PlanNetBridge(name, cidr string) (*step.Step, error) {
	return s.netBridgeStep(name, cidr, true)
}

func (s *Session) netBridgeStep(name, cidr string, plan bool) (*step.Step, error) {
	if s.closing.Load() {
		return nil, fmt.Errorf("net bridge: %w", errClosing)
	}
	if name == "" {
		name = network.DefaultBridge
	}
	if err := network.ValidLinkName(name); err != nil {
		return nil, fmt.Errorf("net bridge: %w", err)
	}
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if _, ok := s.netBridge(name); ok {
		return nil, fmt.Errorf("net bridge %s: this session made it already", name)
	}
	host, err := s.netHost()
	if err != nil {
		return nil, err
	}
	st := &step.Step{
		Command: strings.TrimSpace("net bridge " + name + " " + cidr),
		Man:     []string{"rtnetlink(7)", "ip-link(8)", "ip-address(8)"},
		Undo:    "teardown deletes the bridge (RTM_DELLINK, `ip link del " + name + "`); its address and routes go with it; then conntrack's entries of its subnet (IPCTNL_MSG_CT_DELETE), which would otherwise wait to expire",
	}
	var subnet *net.IPNet
	if cidr != "" {
		if subnet, err = network.ParseSubnet(cidr); err != nil {
			return nil, fmt.Errorf("net bridge %s %s: %w", name, cidr, err)
		}
	} else {
		h, err := host.Handle()
		if err != nil {
			return nil, err
		}
		subnet, err = network.ChooseSubnet(h)
		h.Close()
		if err != nil {
			return nil, err
		}
		st.Notes = append(st.Notes, "subnet "+subnet.String()+" chosen: the first /24 of 172.20.0.0/16 that no route or address of the host side overlaps")
	}
	st.Summary = fmt.Sprintf("made bridge %s on the host side with the gateway address %s/%d: a virtual switch the boxes' veths will plug into",
		name, network.Gateway(subnet), prefix(subnet))
	op := &network.Op{St: st, Rec: s.recordSession, Plan: plan, Session: s.ID}
	if err := network.AddBridge(op, host, name, subnet); err != nil {
		return st, err
	}
	st.Notes = append(st.Notes, network.HostNotes(host)...)
	if !plan {
		s.net.bridges = append(s.net.bridges, netBridge{name, subnet})
	}
	return st, nil
}

func prefix(n *net.IPNet) int { ones, _ := n.Mask.Size(); return ones }

// boxNS is the box's network namespace, refused while it is the host's.
func (b *Box) boxNS(cmd string) (network.NS, error) {
	if !b.Has("net") {
		return network.NS{}, fmt.Errorf("%s: box %s shares the host's network namespace: its eth0 would be the host's own; run `unshare net` first", cmd, b.Name)
	}
	return network.NSAt(fmt.Sprintf("/proc/%d/ns/net", b.PID()))
}

// NetVeth makes the box's veth pair (`net veth [BRIDGE]`).
func (b *Box) NetVeth(bridge string) (*step.Step, error) { return b.netVeth(bridge, false) }

// PlanNetVeth is NetVeth's plan.
func (b *Box) PlanNetVeth(bridge string) (*step.Step, error) { return b.netVeth(bridge, true) }

func (b *Box) netVeth(bridge string, plan bool) (*step.Step, error) {
	s := b.session
	if s.closing.Load() {
		return nil, fmt.Errorf("net veth: %w", errClosing)
	}
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	box, err := b.boxNS("net veth")
	if err != nil {
		return nil, err
	}
	if b.net.hostEnd != "" {
		return nil, fmt.Errorf("net veth: box %s has its veth pair already (%s on %s ↔ eth0)", b.Name, b.net.hostEnd, b.net.bridge)
	}
	br, ok := s.netBridge(bridge)
	if !ok {
		if bridge == "" {
			return nil, fmt.Errorf("net veth: there is no bridge yet; make one with `net bridge`")
		}
		return nil, fmt.Errorf("net veth %s: this session has no bridge called %s", bridge, bridge)
	}
	host, err := s.netHost()
	if err != nil {
		return nil, err
	}
	hostEnd := "veth" + b.ID[:8]
	st := &step.Step{
		Command: strings.TrimSpace("net veth " + bridge),
		Summary: fmt.Sprintf("made a veth pair: %s on bridge %s on the host side, eth0 inside box %s; both ends up, and the box's lo up too", hostEnd, br.name, b.Name),
		Man:     []string{"veth(4)", "rtnetlink(7)", "ip-link(8)"},
		Undo:    "teardown deletes " + hostEnd + " (`ip link del " + hostEnd + "`), which takes eth0 with it; the box's network namespace ending does too",
	}
	op := &network.Op{St: st, Rec: b.recordBox, Plan: plan, Session: s.ID}
	if err := network.AddVeth(op, host, box, br.name, hostEnd); err != nil {
		return st, err
	}
	if !plan {
		b.net.bridge, b.net.hostEnd = br.name, hostEnd
	}
	return st, nil
}

// NetAddr puts an address on the box's eth0 (`net addr [CIDR]`).
func (b *Box) NetAddr(cidr string) (*step.Step, error) { return b.netAddr(cidr, false) }

// PlanNetAddr is NetAddr's plan.
func (b *Box) PlanNetAddr(cidr string) (*step.Step, error) { return b.netAddr(cidr, true) }

func (b *Box) netAddr(cidr string, plan bool) (*step.Step, error) {
	s := b.session
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	box, err := b.boxNS("net addr")
	if err != nil {
		return nil, err
	}
	if b.net.hostEnd == "" {
		return nil, fmt.Errorf("net addr: box %s has no eth0 yet; run `net veth` first", b.Name)
	}
	if b.net.addr != nil {
		return nil, fmt.Errorf("net addr: box %s has %s already; a box gets one address here", b.Name, b.net.addr)
	}
	br, _ := s.netBridge(b.net.bridge)
	taken := s.takenAddrs(br)
	var addr *net.IPNet
	if cidr == "" {
		addr = nextFree(br.subnet, taken)
		if addr == nil {
			return nil, fmt.Errorf("net addr: every address of %s is taken", br.subnet)
		}
	} else if addr, err = parseBoxAddr(cidr, br.subnet); err != nil {
		return nil, err
	}
	if who, ok := taken[addr.IP.String()]; ok {
		return nil, fmt.Errorf("net addr %s: the address is taken by %s", cidr, who)
	}
	st := &step.Step{
		Command: strings.TrimSpace("net addr " + cidr),
		Summary: fmt.Sprintf("gave box %s's eth0 the address %s; the kernel added the route to %s through eth0 itself", b.Name, addr, br.subnet),
		Man:     []string{"rtnetlink(7)", "ip-address(8)"},
		Undo:    "the address goes with eth0 when the veth pair or the box's network namespace is deleted",
	}
	op := &network.Op{St: st, Plan: plan}
	if err := network.AddAddr(op, box, addr); err != nil {
		return st, err
	}
	if !plan {
		b.net.addr = addr
	}
	return st, nil
}

// takenAddrs maps the addresses of a bridge's subnet in use to who uses them.
func (s *Session) takenAddrs(br netBridge) map[string]string {
	taken := map[string]string{network.Gateway(br.subnet).String(): "the bridge " + br.name + " (the gateway)"}
	for _, o := range s.Boxes() {
		if o != nil && o.net.addr != nil {
			taken[o.net.addr.IP.String()] = "box " + o.Name
		}
	}
	return taken
}

// nextFree is the first address of the subnet after the gateway that no
// one has, short of the broadcast address.
func nextFree(subnet *net.IPNet, taken map[string]string) *net.IPNet {
	ones, bits := subnet.Mask.Size()
	size := 1 << (bits - ones)
	for i := 2; i < size-1; i++ {
		ip := network.NthAddr(subnet, i)
		if _, ok := taken[ip.String()]; !ok {
			return &net.IPNet{IP: ip, Mask: subnet.Mask}
		}
	}
	return nil
}

// parseBoxAddr reads ADDR or ADDR/PREFIX, which must be a host address
// of the bridge's subnet, with its prefix.
func parseBoxAddr(s string, subnet *net.IPNet) (*net.IPNet, error) {
	str := s
	if !strings.Contains(str, "/") {
		str += "/" + strconv.Itoa(prefix(subnet))
	}
	ip, n, err := net.ParseCIDR(str)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("net addr %s: not an IPv4 address such as %s", s, network.NthAddr(subnet, 2))
	}
	if !subnet.Contains(ip) || prefix(n) != prefix(subnet) {
		return nil, fmt.Errorf("net addr %s: the box's address must be in the bridge's subnet %s, with prefix /%d", s, subnet, prefix(subnet))
	}
	ones, bits := subnet.Mask.Size()
	if ip.Equal(subnet.IP) || ip.Equal(network.NthAddr(subnet, 1<<(bits-ones)-1)) {
		return nil, fmt.Errorf("net addr %s: that is the subnet's network or broadcast address", s)
	}
	return &net.IPNet{IP: ip.To4(), Mask: subnet.Mask}, nil
}
