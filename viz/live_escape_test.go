package viz

import (
	"reflect"
	"strings"
	"testing"
)

// hostile is what a box can put in any string the live view draws: a
// process name, a hostname, a file in its upper dir, a link's name.
const hostile = "p\x1b]2;PWN\x07\x1b[44m\u009b2J\u202e"

// taint appends hostile to every string the value v holds, however
// deep: every field of the snapshot is one a box may have filled.
func taint(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			taint(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				taint(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			taint(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			taint(e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(v.String() + hostile)
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
		taint(reflect.ValueOf(&s))
		page := LivePage(s)
		if !strings.Contains(page, `\x1b]2;PWN\x07`) {
			t.Errorf("%s: the tainted strings are not drawn escaped at all: the test would prove nothing", name)
		}
		for i, r := range page {
			if r != '\n' && r != '\t' && unsafeRune(r) {
				t.Errorf("%s: raw %U in the page at %d: …%q…", name, r, i, page[max(0, i-40):min(len(page), i+20)])
				break
			}
		}
	}
}
