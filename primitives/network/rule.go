package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// A rule is built from parts, each its nf_tables expressions and the same
// in nft(8)'s words; the words are what `explain` shows and what `nft
// list` prints back (checked in the tests).
type part struct {
	exprs []expr.Any
	text  string
}

type ruleSpec []part

func (r ruleSpec) exprs() []expr.Any {
	var out []expr.Any
	for _, p := range r {
		out = append(out, p.exprs...)
	}
	return out
}

func (r ruleSpec) String() string {
	var words []string
	for _, p := range r {
		words = append(words, p.text)
	}
	return strings.Join(words, " ")
}

// ifnameData is an interface name as nft compares it: NUL-terminated,
// padded to IFNAMSIZ.
func ifnameData(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func matchIfname(key expr.MetaKey, name string, neq bool) part {
	op, word := expr.CmpOpEq, " "
	if neq {
		op, word = expr.CmpOpNeq, " != "
	}
	kw := "iifname"
	if key == expr.MetaKeyOIFNAME {
		kw = "oifname"
	}
	return part{[]expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifnameData(name)},
	}, kw + word + fmt.Sprintf("%q", name)}
}

// matchAddr matches the IPv4 source (offset 12) or destination (16) address
// against a subnet or a single address.
func matchAddr(dst bool, n *net.IPNet) part {
	off, kw := uint32(12), "ip saddr "
	if dst {
		off, kw = 16, "ip daddr "
	}
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}
	ones, _ := n.Mask.Size()
	if ones == 32 {
		return part{[]expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()}}, kw + n.IP.String()}
	}
	return part{[]expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()},
	}, kw + n.String()}
}

func protoNum(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// matchDport matches the layer 4 protocol and destination port.
func matchDport(proto string, port uint16) part {
	return part{[]expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}, fmt.Sprintf("meta l4proto %s th dport %d", proto, port)}
}

// daddrLocal matches packets addressed to one of the host side's own
// addresses (fib daddr type local), as Docker's DOCKER chain jump does.
func daddrLocal() part {
	return part{[]expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}, "fib daddr type local"}
}

func ctBits(key expr.CtKey, bits uint32, text string) part {
	return part{[]expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}, text}
}

// ipsDstNAT is IPS_DST_NAT of enum ip_conntrack_status.
const ipsDstNAT = 1 << 5

func ctStatusDNAT() part { return ctBits(expr.CtKeySTATUS, ipsDstNAT, "ct status dnat") }

func ctEstablished() part {
	return ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, "ct state established,related")
}

func counter() part { return part{[]expr.Any{&expr.Counter{}}, "counter"} }

func masquerade() part { return part{[]expr.Any{&expr.Masq{}}, "masquerade"} }

func accept() part {
	return part{[]expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}, "accept"}
}

func dnatTo(ip net.IP, port uint16) part {
	return part{[]expr.Any{
		&expr.Immediate{Register: 1, Data: ip.To4()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}, fmt.Sprintf("dnat to %s:%d", ip, port)}
}

// Decode turns a rule's expressions, as read back from the kernel, into
// nft(8)'s words, with the counter's packets and bytes. It knows the
// expressions stepbox writes; anything else is named by its type.
func Decode(exprs []expr.Any) string {
	var words []string
	var lhs string     // what register 1 holds
	var mask []byte    // a bitwise mask applied to it
	imm := [3][]byte{} // immediates by register
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister && e.Key == expr.MetaKeyNFTRACE && e.Register < 3 && len(imm[e.Register]) == 1 {
				words = append(words, fmt.Sprintf("meta nftrace set %d", imm[e.Register][0]))
				continue
			}
			lhs = map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyL4PROTO: "meta l4proto"}[e.Key]
			mask = nil
		case *expr.Payload:
			mask = nil
			switch {
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 12:
				lhs = "ip saddr"
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 16:
				lhs = "ip daddr"
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2:
				lhs = "th dport"
			default:
				lhs = fmt.Sprintf("@payload(base %d, offset %d, len %d)", e.Base, e.Offset, e.Len)
			}
		case *expr.Fib:
			lhs, mask = "fib daddr type", nil
		case *expr.Ct:
			lhs, mask = map[expr.CtKey]string{expr.CtKeySTATE: "ct state", expr.CtKeySTATUS: "ct status"}[e.Key], nil
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Cmp:
			words = append(words, cmpWords(lhs, mask, e))
		case *expr.Counter:
			words = append(words, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
		case *expr.Masq:
			words = append(words, "masquerade")
		case *expr.Immediate:
			if e.Register < 3 {
				imm[e.Register] = e.Data
			}
		case *expr.NAT:
			if e.Type == expr.NATTypeDestNAT && len(imm[1]) == 4 && len(imm[2]) == 2 {
				words = append(words, fmt.Sprintf("dnat to %s:%d", net.IP(imm[1]), binary.BigEndian.Uint16(imm[2])))
			} else {
				words = append(words, fmt.Sprintf("nat(type %d)", e.Type))
			}
		case *expr.Verdict:
			words = append(words, verdictWord(e.Kind))
		default:
			words = append(words, fmt.Sprintf("<%T>", e))
		}
	}
	return strings.Join(words, " ")
}

func verdictWord(k expr.VerdictKind) string {
	switch k {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	}
	return fmt.Sprintf("verdict %d", k)
}

func cmpWords(lhs string, mask []byte, c *expr.Cmp) string {
	op := " "
	if c.Op == expr.CmpOpNeq {
		op = " != "
	}
	switch lhs {
	case "iifname", "oifname":
		return lhs + op + fmt.Sprintf("%q", string(bytes.TrimRight(c.Data, "\x00")))
	case "ip saddr", "ip daddr":
		if mask != nil {
			n := net.IPNet{IP: net.IP(c.Data), Mask: net.IPMask(mask)}
			return lhs + op + n.String()
		}
		return lhs + op + net.IP(c.Data).String()
	case "meta l4proto":
		switch c.Data[0] {
		case unix.IPPROTO_TCP:
			return lhs + op + "tcp"
		case unix.IPPROTO_UDP:
			return lhs + op + "udp"
		}
		return fmt.Sprintf("%s%s%d", lhs, op, c.Data[0])
	case "th dport":
		return fmt.Sprintf("%s%s%d", lhs, op, binary.BigEndian.Uint16(c.Data))
	case "fib daddr type":
		if binaryutil.NativeEndian.Uint32(c.Data) == unix.RTN_LOCAL {
			return lhs + op + "local"
		}
		return fmt.Sprintf("%s%s%d", lhs, op, binaryutil.NativeEndian.Uint32(c.Data))
	case "ct state", "ct status":
		if mask == nil {
			break
		}
		bits := binaryutil.NativeEndian.Uint32(mask)
		var names []string
		if lhs == "ct state" {
			for _, b := range []struct {
				bit  uint32
				name string
			}{{expr.CtStateBitNEW, "new"}, {expr.CtStateBitESTABLISHED, "established"}, {expr.CtStateBitRELATED, "related"}, {expr.CtStateBitINVALID, "invalid"}} {
				if bits&b.bit != 0 {
					names = append(names, b.name)
				}
			}
		} else if bits == ipsDstNAT {
			names = append(names, "dnat")
		}
		if len(names) > 0 {
			return lhs + " " + strings.Join(names, ",")
		}
	}
	return fmt.Sprintf("%s%s%x", lhs, op, c.Data)
}
