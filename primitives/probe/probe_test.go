package probe

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// What the session passes on the command line is what the probe reads.
func TestHostArgsRoundTrip(t *testing.T) {
	h := Host{File: "/etc/hostname", FileDev: 65024, FileIno: 1234, Disks: []Device{{Dev: 65024, Name: "vda"}, {Dev: 7 << 8, Name: "loop0"}},
		OwnRoot: true, HandleType: 1, Handle: []byte{0xde, 0xad, 0, 1}, PIDNS: 4026531836, CgroupNS: 4026531835}
	got, names, err := parseArgs(h.Args([]string{"disk", "dmesg"}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) || !reflect.DeepEqual(names, []string{"disk", "dmesg"}) {
		t.Errorf("parseArgs(Args) = %+v %v, want %+v", got, names, h)
	}
}

// An unknown probe name runs nothing and prints no report.
func TestMainRefusesAnUnknownProbe(t *testing.T) {
	var out, errs bytes.Buffer
	if code := Main(Host{}.Args([]string{"dmesg", "teleport"}), &out, &errs); code != 2 || out.Len() != 0 || !strings.Contains(errs.String(), `"teleport"`) {
		t.Errorf("Main with an unknown probe: exit %d, stdout %q, stderr %q", code, out.String(), errs.String())
	}
}

// Every way a probe reports itself open names the steps that close it.
func TestEveryOpenWayNamesItsClosingStep(t *testing.T) {
	for _, name := range Names() {
		if len(closers[name]) == 0 {
			t.Errorf("probe %s has no closing step", name)
		}
	}
	for name := range closers {
		if !Known(name) {
			t.Errorf("closers names %s, which is no probe", name)
		}
	}
}
