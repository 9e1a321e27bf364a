package primitives

import (
	"strings"
	"testing"

	"stepbox/primitives/devices"
)

// The rules a v2 program was compiled from read as devices.list would:
// only what allows, after the last rule that denies every device; with
// no such rule every device is allowed first.
func TestAllowLinesReadRulesAsDevicesList(t *testing.T) {
	parse := func(allow bool, lines ...string) []devices.Rule {
		var out []devices.Rule
		for _, l := range lines {
			r, err := devices.ParseRule(l, allow)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	for _, tc := range []struct {
		rules []devices.Rule
		want  string
	}{
		{devices.Docker(), strings.Join(DockerDefault.Devices, "|")},
		{parse(false, "c 1:3 rwm"), "a *:* rwm"},
		{append(parse(false, "a"), parse(true, "c 1:3 rwm")...), "c 1:3 rwm"},
		{nil, "a *:* rwm"},
	} {
		if got := strings.Join(allowLines(tc.rules), "|"); got != tc.want {
			t.Errorf("allowLines(%v) = %s, want %s", tc.rules, got, tc.want)
		}
	}
	if DockerDefault.CompareDevices(DeviceList{Rules: allowLines(devices.Docker())}) != AsDocker {
		t.Errorf("Docker's own rules are not Docker's default")
	}
	if DockerDefault.CompareDevices(DeviceList{Rules: []string{"a *:* rwm"}}) != Weaker {
		t.Errorf("every device is not weaker than Docker's default")
	}
}
