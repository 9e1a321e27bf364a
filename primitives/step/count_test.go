package step

import "testing"

// A count reads as English: singular for one, the right plural otherwise.
func TestCountSaysOneInTheSingularAndTheRestInThePlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{1, "layer", "1 layer"}, {2, "layer", "2 layers"}, {0, "layer", "0 layers"},
		{1, "box", "1 box"}, {3, "box", "3 boxes"},
		{1, "process", "1 process"}, {2, "process", "2 processes"},
		{1, "namespace", "1 namespace"}, {7, "namespace", "7 namespaces"},
		{2, "copy", "2 copies"}, {2, "key", "2 keys"}, {1, "session", "1 session"},
	} {
		if got := Count(c.n, c.noun); got != c.want {
			t.Errorf("Count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
