package viz

import (
	"reflect"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// hostile is what a box can put in any string the live view draws: a
// process name, a hostname, a file in its upper dir, a link's name.
const hostile = "p\x1b]2;PWN\x07\x1b[44m\u009b2J\u202e"

// taint appends bad to every string the value v holds, however deep:
// every field of the snapshot is one a box may have filled.
func taint(v reflect.Value, bad string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			taint(v.Elem(), bad)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				taint(v.Field(i), bad)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			taint(v.Index(i), bad)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			taint(e, bad)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(v.String() + bad)
		}
	}
}

// The live view draws every box-made string with its control characters
// escaped as the terminal panels show them (\x1b), whichever field it
// came in: a raw ESC or BEL in the page garbles it and is no legal XML.
func TestLivePageEscapesControlCharactersInEveryField(t *testing.T) {
	pages := map[string]func() LiveState{
		"one box":          liveState,
		"two boxes, a map": func() LiveState { return liveNetState(2) },
		"one box, a map":   func() LiveState { return liveNetState(1) },
		"output": func() LiveState {
			s := liveState()
			s.Boxes, s.Output = s.Boxes[:1], []string{"ls", "out"}
			return s
		},
	}
	for name, state := range pages {
		s := state()
		taint(reflect.ValueOf(&s), hostile)
		page := LivePage(s)
		if !strings.Contains(page, `\x1b]2;PWN\x07`) {
			t.Errorf("%s: the tainted strings are not drawn escaped at all: the test would prove nothing", name)
		}
		if i, r := rawControl(page); i >= 0 {
			t.Errorf("%s: raw %U in the page at %d: …%q…", name, r, i, page[max(0, i-40):min(len(page), i+20)])
		}
	}
}

// rawControl finds the first character of page a terminal or an XML
// parser would act on (a newline is HTML's own).
func rawControl(page string) (int, rune) {
	for i, r := range page {
		if r != '\n' && step.UnsafeRune(r) {
			return i, r
		}
	}
	return -1, 0
}

// FuzzLivePageEscapes: whatever a box puts in whichever field, the page
// holds no raw control character and stays well-formed enough to parse.
func FuzzLivePageEscapes(f *testing.F) {
	for _, s := range []string{hostile, "\xff\xfe", "<script>&\"'", "a\rb\tc\x00", "\u2028\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bad string) {
		s := liveNetState(1)
		taint(reflect.ValueOf(&s), bad)
		page := LivePage(s)
		if i, r := rawControl(page); i >= 0 {
			t.Fatalf("a field holding %q put a raw %U in the page", bad, r)
		}
		if strings.Contains(page, "<script") {
			i := strings.Index(page, "<script")
			t.Fatalf("a field holding %q put markup in the page: …%s…", bad, page[max(0, i-200):min(len(page), i+40)])
		}
	})
}
