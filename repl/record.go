package repl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/outfile"
	"stepbox/primitives/step"
)

// Recorder writes an asciicast v2 recording, as asciinema plays it: a
// header line of JSON, then one [seconds, "o", text] event per write
// (docs.asciinema.org/manual/asciicast/v2).
type Recorder struct {
	mu      sync.Mutex
	f       *outfile.File
	start   time.Time
	pending []byte // the start of a UTF-8 sequence a write cut in two
	lastCR  bool   // the previous write ended in '\r'
	err     error
}

type castHeader struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Env       map[string]string `json:"env"`
}

// StartRecording creates the recording for path and writes the header
// for a terminal of width × height. It is written beside path, as
// outfile makes it, and put at path by Close.
func StartRecording(path string, width, height int) (*Recorder, error) {
	f, err := outfile.Create(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--record %s: %w", path, err)
	}
	r := &Recorder{f: f, start: time.Now()}
	term := os.Getenv("TERM")
	if term == "" {
		term = "xterm-256color"
	}
	h, _ := json.Marshal(castHeader{Version: 2, Width: width, Height: height, Timestamp: r.start.Unix(),
		Env: map[string]string{"SHELL": "stepbox", "TERM": term}})
	if _, err := f.Write(append(h, '\n')); err != nil {
		f.Abort()
		return nil, fmt.Errorf("--record %s: %w", path, err)
	}
	return r, nil
}

// Write records p as one output event. It never fails, so a recording
// that cannot be written never stops what the learner sees; Close
// reports the first error.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return len(p), nil
	}
	data := append(r.pending, p...)
	r.pending = nil
	// Hold back a UTF-8 sequence cut at the end: JSON strings must be
	// whole characters.
	if cut := step.IncompleteUTF8(data); cut > 0 {
		r.pending = append([]byte(nil), data[len(data)-cut:]...)
		data = data[:len(data)-cut]
	}
	if len(data) == 0 {
		return len(p), nil
	}
	// A terminal turns "\n" into "\r\n" (the ONLCR flag); a player does
	// not, so the recording carries what the terminal showed.
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false) // keep the prompt's '>' readable in the file
	enc.Encode([]any{json.Number(strconv.FormatFloat(time.Since(r.start).Seconds(), 'f', 6, 64)), "o", r.crlf(data)})
	if _, err := r.f.Write(line.Bytes()); err != nil {
		r.err = err
	}
	return len(p), nil
}

func (r *Recorder) crlf(data []byte) string {
	var b bytes.Buffer
	prevCR := r.lastCR
	for _, c := range data {
		if c == '\n' && !prevCR {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
		prevCR = c == '\r'
	}
	r.lastCR = prevCR
	return b.String()
}

// Close ends the recording and renames it to its path.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.f.Commit()
	if r.err != nil {
		return fmt.Errorf("recording: %w", r.err)
	}
	return err
}

// tee writes to w and to the recording.
func (r *Recorder) tee(w io.Writer) io.Writer { return io.MultiWriter(w, r) }

// Record tees the shell's output into an asciicast recording at path
// (nothing when path is ""). Every event is written as it happens, to a
// file beside path that the session's teardown renames to path.
func (sh *Shell) Record(path string, term *primitives.Terminal) error {
	if path == "" {
		return nil
	}
	height := 40
	if h := term.Height(); h > 0 {
		height = h
	} else if n, err := strconv.Atoi(os.Getenv("LINES")); err == nil && n > 0 {
		height = n
	}
	rec, err := StartRecording(path, sh.Width, height)
	if err != nil {
		return err
	}
	sh.Out, sh.Err = rec.tee(sh.Out), rec.tee(sh.Err)
	// A recording is played on a terminal: what a box wrote is filtered
	// for it as for the learner's (boxStdio).
	sh.outTTY, sh.errTTY = true, true
	w := sh.watch()
	w.rec = rec
	return nil
}
