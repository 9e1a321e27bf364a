package images

import (
	"strings"
	"testing"
)

// Rootless, every entry is written but none can be given another owner:
// that is said as owners not kept, never as entries skipped.
func TestUnpackReportSaysOwnersNotKeptApartFromEntriesSkipped(t *testing.T) {
	note := UnpackReport{Entries: 293, OwnersNotKept: 293, Owner: "65534:65534"}.note()
	for _, want := range []string{"every file is here", "the owners of 293 entries (such as 65534:65534) were not kept", "CAP_CHOWN"} {
		if !strings.Contains(note, want) {
			t.Errorf("the note does not say %q: %s", want, note)
		}
	}
	if strings.Contains(note, "skipped") {
		t.Errorf("entries all written are called skipped: %s", note)
	}
	both := UnpackReport{OwnersNotKept: 1, Owner: "0:42", Skipped: []string{"/dev/x: mknodat(1/3) refused by the kernel: EPERM"}}.note()
	if !strings.Contains(both, "owners of 1 entry (such as 0:42)") || !strings.Contains(both, "; 1 entry not unpacked: /dev/x") {
		t.Errorf("owners and a skipped entry: %s", both)
	}
	if n := (UnpackReport{Entries: 3}).note(); n != "" {
		t.Errorf("an unpack as asked has a note: %q", n)
	}
}
