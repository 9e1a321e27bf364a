package main

import (
	"strings"
	"testing"
)

// A new `make bench` writes its tables around what was measured by hand
// and keeps it whole, as it keeps `make soak`'s section.
func TestANewBenchKeepsWhatWasWrittenByHand(t *testing.T) {
	hand := byHandStart + "\n## Fourth round (by hand)\n\nrm 1.9 → 1.2 ms\n" + byHandEnd
	old := "# stepbox, measured\n\nold tables\n\n" + hand + "\n\n## Scale and memory\n\nold\n"
	got := byHandSection(old)
	if got != hand {
		t.Fatalf("byHandSection = %q, want %q", got, hand)
	}
	text := (&results{}).markdown(got, reliabilitySection(old))
	if !strings.Contains(text, hand) {
		t.Fatalf("the new RESULTS.md lost the hand-written section:\n%s", text)
	}
	if byHandSection("no markers here") != "" {
		t.Fatal("a file without the markers has no hand-written section to keep")
	}
}
