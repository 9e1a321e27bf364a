package primitives

import (
	"io"
	"os"
	"sync"
	"time"
)

// boxStdio holds the three descriptors sent to the box process for a
// command, and the pipes stepbox copies from into the caller's writers:
// the command never gets a descriptor of the caller's (guardStdio).
type boxStdio struct {
	send  []*os.File // stdin, stdout, stderr as the command gets them
	owned []*os.File // those stepbox opened and must close once sent
}

func (s *boxStdio) closeSent() { closeAll(s.owned) }

type pump struct {
	wg    sync.WaitGroup
	pipes []*os.File
	done  func() // after the copies: flushes the terminal filters (guardStdio)
}

// wait lets the copies finish; after grace, a pipe still held open by a
// background process in the box is cut short.
func (p *pump) wait(grace time.Duration) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		for _, f := range p.pipes {
			f.SetReadDeadline(time.Now())
		}
		<-done
	}
	closeAll(p.pipes)
	if p.done != nil {
		p.done()
		p.done = nil
	}
}

// commandStdio is what a box command gets as fds 0-2: a pty of its
// own, already relayed to the learner's terminal, when std.Terminal is
// set; else std's files and pipes, with the learner's terminal never
// among them.
func commandStdio(std Stdio) (*boxStdio, *pump, *boxTerminal, error) {
	if std.Terminal != nil {
		t, err := openBoxTerminal(std.Terminal)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := t.relay(); err != nil {
			t.close()
			return nil, nil, nil, err
		}
		return &boxStdio{send: []*os.File{t.slave, t.slave, t.slave}}, &pump{}, t, nil
	}
	std, done, err := guardStdio(std)
	if err != nil {
		return nil, nil, nil, err
	}
	files, p, err := stdioFiles(std)
	if err != nil {
		return nil, nil, nil, err
	}
	p.done = done
	return files, p, nil, nil
}

func stdioFiles(std Stdio) (*boxStdio, *pump, error) {
	s := &boxStdio{}
	p := &pump{}
	in := std.In
	if in == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, nil, err
		}
		s.owned = append(s.owned, f)
		in = f
	}
	s.send = append(s.send, in)
	out, err := s.output(std.Out, p)
	if err != nil {
		s.closeSent()
		closeAll(p.pipes)
		return nil, nil, err
	}
	s.send = append(s.send, out)
	if SameWriter(std.Out, std.Err) {
		// One pipe for both: two copies into one writer would race.
		s.send = append(s.send, out)
		return s, p, nil
	}
	errf, err := s.output(std.Err, p)
	if err != nil {
		s.closeSent()
		closeAll(p.pipes)
		return nil, nil, err
	}
	s.send = append(s.send, errf)
	return s, p, nil
}

// SameWriter reports whether a and b are the same writer; writers of
// types that cannot be compared are taken as different.
func SameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a != nil && a == b
}

func (s *boxStdio) output(w io.Writer, p *pump) (*os.File, error) {
	if w == nil {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err == nil {
			s.owned = append(s.owned, f)
		}
		return f, err
	}
	// Never the caller's own file, even one guardStdio missed: a pipe
	// the session copies from.
	r, wf, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.owned = append(s.owned, wf)
	p.pipes = append(p.pipes, r)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		io.Copy(w, r)
	}()
	return wf, nil
}
