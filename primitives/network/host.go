package network

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// HostNotes says what the host side already has that bears on boxes'
// traffic, without changing any of it: ip_forward already on, legacy
// iptables tables, and other nf_tables tables whose forward chain drops
// by default (Docker's FORWARD policy DROP: forwarded packets then need
// an accept there too; a drop in any base chain is final).
func HostNotes(host NS) []string {
	var notes []string
	if v, err := host.Sysctl("net.ipv4.ip_forward"); err == nil && v == "1" {
		notes = append(notes, "net.ipv4.ip_forward is already 1 on the host side: it forwards between interfaces; stepbox leaves it as it is")
	}
	if b, err := host.readIn("/proc/thread-self/net/ip_tables_names"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		notes = append(notes, "legacy iptables tables are loaded on the host side ("+strings.Join(strings.Fields(string(b)), ", ")+
			"): their chains see the same packets as stepbox's nf_tables table; `iptables-legacy -S` lists them")
	}
	c, err := host.Nft()
	if err != nil {
		return notes
	}
	defer c.CloseLasting()
	chs, err := c.ListChains()
	if err != nil {
		return notes
	}
	for _, ch := range chs {
		if ch.Table.Name == Table || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		notes = append(notes, fmt.Sprintf("table %s %s, chain %s: policy drop on the forward hook (Docker sets this on FORWARD): packets between the bridge and the outside are dropped there unless a rule of that chain accepts them; stepbox does not change it",
			familyWord(ch.Table.Family), ch.Table.Name, ch.Name))
	}
	return notes
}

func familyWord(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return strconv.Itoa(int(f))
}

// PortInUse says whether a socket of the host side is bound to port (a
// TCP socket listening, or any UDP socket), IPv4 or IPv6, read from
// /proc/net/{tcp,tcp6,udp,udp6} as a thread in the namespace sees them.
func PortInUse(host NS, proto string, port uint16) (bool, error) {
	for _, file := range []string{proto, proto + "6"} {
		b, err := host.readIn("/proc/thread-self/net/" + file)
		if err != nil {
			if isNoEnt(err) {
				continue // no IPv6 in this kernel
			}
			return false, fmt.Errorf("read /proc/net/%s: %w", file, err)
		}
		if portBound(b, proto, port) {
			return true, nil
		}
	}
	return false, nil
}

// portBound reads one /proc/net/{tcp,udp}[6] table.
func portBound(table []byte, proto string, port uint16) bool {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		if proto == "udp" || f[3] == "0A" { // 0A: TCP_LISTEN
			return true
		}
	}
	return false
}
