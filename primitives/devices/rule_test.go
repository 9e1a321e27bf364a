package devices

import "testing"

func TestParseRuleReadsV1SyntaxAndRefusesTheRest(t *testing.T) {
	for in, want := range map[string]string{
		"c 1:3 rwm": "c 1:3 rwm", "b *:* m": "b *:* m", "a": "a *:* rwm", "c 136:* wr": "c 136:* rw",
	} {
		r, err := ParseRule(in, true)
		if err != nil || r.String() != want {
			t.Errorf("ParseRule(%q) = %q, %v; want %q", in, r.String(), err, want)
		}
	}
	for _, in := range []string{"", "x 1:3 rwm", "c 1 rwm", "c 1:3", "c 1:3 rwx", "c 1:3 rr", "c -1:3 r", "c 01:3 r", "a 1:3 r", "c 1:3 rwm extra", "c 4294967296:1 r"} {
		if _, err := ParseRule(in, true); err == nil {
			t.Errorf("ParseRule(%q) accepted a bad rule", in)
		}
	}
}

func TestDockerRulesAllowOnlyTheUsualDevices(t *testing.T) {
	d := Docker()
	for _, c := range []struct {
		typ          byte
		major, minor int64
		access       string
		want         bool
	}{
		{'c', 1, 3, "rw", true},     // null
		{'c', 1, 9, "r", true},      // urandom
		{'c', 136, 4, "rw", true},   // a pts
		{'b', 254, 0, "r", false},   // a disk
		{'b', 254, 0, "m", true},    // mknod of any: the open is what counts
		{'c', 1, 11, "r", false},    // kmsg
		{'c', 10, 200, "rw", true},  // tun
		{'c', 5, 1, "rw", true},     // console: moby's spec allows it
		{'c', 10, 229, "rw", false}, // fuse: moby's spec denies it
		{'c', 10, 229, "m", true},   // and runc's mknod of any lets it be made
	} {
		if got := Allows(d, c.typ, c.major, c.minor, c.access); got != c.want {
			t.Errorf("Docker's rules for %c %d:%d %s: %v, want %v", c.typ, c.major, c.minor, c.access, got, c.want)
		}
	}
	// A deny of one access refuses a request that asks for it among others.
	rules := []Rule{mustRule(t, "c 1:3 w", false)}
	if Allows(rules, 'c', 1, 3, "rw") || !Allows(rules, 'c', 1, 3, "r") {
		t.Error("deny c 1:3 w: want rw refused and r allowed")
	}
}

func mustRule(t *testing.T, s string, allow bool) Rule {
	t.Helper()
	r, err := ParseRule(s, allow)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
