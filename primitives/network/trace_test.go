package network

import (
	"reflect"
	"testing"
)

// A request from box b to box a crosses b's eth0, b's veth, the bridge,
// a's veth and a's eth0, whatever order the kernel lists the links in.
func TestTraceHopsFollowTheWireFromTheBoxOutward(t *testing.T) {
	links := func(n uint64, ls ...Link) []Link {
		for i := range ls {
			ls[i].RxPackets, ls[i].TxPackets = n, n
		}
		return ls
	}
	host := func(n uint64) Space {
		s := Space{Name: "host", Links: links(n, Link{Name: "lo"}, Link{Name: "vetha", Master: "br7"}, Link{Name: "vethb", Master: "br7"})}
		return Space{Name: "host", Links: append(s.Links, Link{Name: "br7", Kind: "bridge"}, Link{Name: "eth9"})}
	}
	owners := map[string]string{"vetha": "a", "vethb": "b"}
	mapAt := func(n uint64) Map {
		h := host(n)
		h.Links[0].RxPackets, h.Links[0].TxPackets = 0, 0 // lo counted nothing
		return Map{Host: h, Owners: owners, Boxes: []Space{
			{Name: "a", Links: links(n, Link{Name: "eth0"})},
			{Name: "b", Links: links(n, Link{Name: "eth0"})},
		}}
	}
	tr := Trace{Box: "b"}
	tr.Deltas(mapAt(0), mapAt(6))
	var got []string
	for _, h := range tr.Hops {
		got = append(got, h.Space+" "+h.Link)
	}
	want := []string{"b eth0", "host vethb", "host br7", "host vetha", "a eth0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hops %q, want %q", got, want)
	}
	if tr.Hops[2].Note == "" {
		t.Errorf("the bridge, which counted nothing, is on the path without saying why: %+v", tr.Hops[2])
	}
}

// Only what the traced command made or refreshed is its conntrack.
func TestFreshFlowsLeaveOutEntriesFromBeforeTheTrace(t *testing.T) {
	before := []Flow{{Line: "tcp old", Timeout: 100}, {Line: "tcp refreshed", Timeout: 50}}
	after := []Flow{{Line: "tcp old", Timeout: 98}, {Line: "tcp refreshed", Timeout: 120}, {Line: "tcp new", Timeout: 120}}
	fresh, older := FreshFlows(before, after)
	if !reflect.DeepEqual(fresh, []string{"tcp refreshed", "tcp new"}) || older != 1 {
		t.Fatalf("fresh %q, older %d; want the refreshed and the new entry, and 1 older", fresh, older)
	}
}
