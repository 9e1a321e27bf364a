package primitives

import "time"

// The detach keys end a box command that holds its terminal, as
// docker's Ctrl-P Ctrl-Q leaves a container: the session reads them
// before they reach the box, so a program that sets its terminal raw
// and ignores every signal still gives the learner's terminal back.
const (
	detachFirst  = 0x10 // Ctrl-P
	detachSecond = 0x11 // Ctrl-Q
	// DetachKeys names them for banners and help.
	DetachKeys = "Ctrl-P Ctrl-Q"
)

// detachWait is how long a Ctrl-P waits for its Ctrl-Q before it goes
// to the box on its own (readline's previous-line, for instance).
const detachWait = 500 * time.Millisecond

// detachKeys watches the learner's keys for Ctrl-P Ctrl-Q. A Ctrl-P is
// held back until the next key: with Ctrl-Q both are the session's,
// with any other key both go to the box.
type detachKeys struct{ held bool }

// feed returns what of keys goes to the box, and whether the learner
// pressed the detach keys (what follows them is not the box's).
func (d *detachKeys) feed(keys []byte) (out []byte, detach bool) {
	for _, k := range keys {
		if d.held {
			d.held = false
			if k == detachSecond {
				return out, true
			}
			out = append(out, detachFirst)
		}
		if k == detachFirst {
			d.held = true
			continue
		}
		out = append(out, k)
	}
	return out, false
}

// expire gives the box a Ctrl-P that waited detachWait for its Ctrl-Q.
func (d *detachKeys) expire() []byte {
	if !d.held {
		return nil
	}
	d.held = false
	return []byte{detachFirst}
}
