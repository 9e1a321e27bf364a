package network

import (
	"net"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// What the kernel hands back decodes to the words the rule was written
// with (the counter now with its values).
func TestDecodeReadsBackTheRulesStepboxWrites(t *testing.T) {
	subnet := &net.IPNet{IP: net.IPv4(172, 20, 0, 0).To4(), Mask: net.CIDRMask(24, 32)}
	box := net.IPv4(172, 20, 0, 2).To4()
	for _, r := range []ruleSpec{
		{matchAddr(false, subnet), matchIfname(expr.MetaKeyOIFNAME, "stepbox0", true), counter(), masquerade()},
		{matchIfname(expr.MetaKeyIIFNAME, "stepbox0", false), counter(), accept()},
		{matchIfname(expr.MetaKeyOIFNAME, "stepbox0", false), ctEstablished(), counter(), accept()},
		{daddrLocal(), matchDport("udp", 5353), counter(), dnatTo(box, 53)},
		{matchAddr(true, &net.IPNet{IP: box, Mask: net.CIDRMask(32, 32)}), matchDport("tcp", 80), ctStatusDNAT(), counter(), masquerade()},
	} {
		want := strings.Replace(r.String(), "counter", "counter packets 0 bytes 0", 1)
		if got := Decode(r.exprs()); got != want {
			t.Errorf("decoded\n  %s\nwant\n  %s", got, want)
		}
	}
}

func TestParseSubnetSaysWhatIsAllowed(t *testing.T) {
	for in, want := range map[string]string{
		"172.20.0.0/24":    "",
		"172.20.0.1/24":    "host bits set: did you mean 172.20.0.0/24?",
		"10.0.0.0/31":      "/8 to /30",
		"10.0.0.0/4":       "/8 to /30",
		"::1/64":           "not an IPv4 subnet",
		"ten/8":            "not an IPv4 subnet",
		"127.0.0.0/8":      "overlaps 127.0.0.0/8 (loopback)",
		"127.0.0.0/24":     "overlaps 127.0.0.0/8 (loopback)",
		"0.0.0.0/8":        "overlaps 0.0.0.0/8",
		"169.0.0.0/8":      "overlaps 169.254.0.0/16 (link-local)",
		"169.254.1.0/24":   "link-local",
		"224.0.0.0/24":     "overlaps 224.0.0.0/4 (multicast)",
		"239.255.0.0/16":   "multicast",
		"240.0.0.0/8":      "overlaps 240.0.0.0/4 (class E",
		"255.255.255.0/24": "such as a private one in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
		"100.64.0.0/24":    "",
		"223.255.255.0/24": "",
		"168.0.0.0/8":      "",
	} {
		_, err := ParseSubnet(in)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseSubnet(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestPortBoundReadsListenersOfBothFamilies(t *testing.T) {
	tcp := "  sl  local_address rem_address   st\n   0: 00000000:1F90 00000000:0000 0A 00000000\n   1: 0100007F:0050 0100007F:A000 01 00000000\n"
	tcp6 := "  sl  local_address                         rem_address st\n   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A\n"
	if !portBound([]byte(tcp), "tcp", 8080) || !portBound([]byte(tcp6), "tcp", 9090) {
		t.Error("a listening socket was not found")
	}
	if portBound([]byte(tcp), "tcp", 80) {
		t.Error("an established connection's local port counted as bound for listening")
	}
}
