package primitives

import (
	"fmt"
	"slices"

	"stepbox/primitives/network"
)

// NetMap reads the network map from the kernel: the host side, each box
// with a network namespace of its own, and stepbox's table with its
// counters; bridges, veth owners and published ports come from the
// session's steps.
func (s *Session) NetMap() (network.Map, error) { return s.NetMapOf(nil) }

// NetMapOf reads the part of the map about the named namespaces ("host"
// and box names; nil for all): after a step, only what it changed.
func (s *Session) NetMapOf(names []string) (network.Map, error) {
	want := func(n string) bool { return names == nil || slices.Contains(names, n) }
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	var m network.Map
	host, err := s.netHost()
	if err != nil {
		return m, err
	}
	if want("host") {
		if m.Host, err = network.ReadSpace(host, "host"); err != nil {
			return m, err
		}
	}
	for _, br := range s.net.bridges {
		m.Bridges = append(m.Bridges, network.Bridge{Name: br.name, Subnet: br.subnet.String(), Gateway: network.Gateway(br.subnet).String()})
	}
	m.Owners = map[string]string{}
	for _, b := range s.Boxes() {
		if b == nil {
			continue
		}
		if !b.Has("net") {
			m.Shared = append(m.Shared, b.Name)
			continue
		}
		if b.net.hostEnd != "" {
			m.Owners[b.net.hostEnd] = b.Name
		}
		for _, p := range b.net.ports {
			m.Ports = append(m.Ports, network.Published{Box: b.Name, Port: p, Addr: b.net.addr.IP.String()})
		}
		if !want(b.Name) {
			continue
		}
		// A box whose processes are gone has no namespace left to read:
		// the map goes on without it, and says so.
		ns, err := network.NSAt(fmt.Sprintf("/proc/%d/ns/net", b.PID()))
		if err != nil {
			m.Gone = append(m.Gone, b.Name)
			continue
		}
		sp, err := network.ReadSpace(ns, b.Name)
		if err != nil {
			m.Gone = append(m.Gone, b.Name)
			continue
		}
		m.Boxes = append(m.Boxes, sp)
	}
	if want("host") {
		if m.Rules, err = network.Rules(host); err != nil {
			return m, err
		}
	}
	return m, nil
}

// NetUsed reports whether the session has taken a network step.
func (s *Session) NetUsed() bool {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.net.host != nil
}
