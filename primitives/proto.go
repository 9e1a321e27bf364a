package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// The session drives each box process over a SOCK_SEQPACKET socketpair:
// one JSON message per packet, file descriptors (stdio for exec, the
// socket of a new PID 1) travel beside it as SCM_RIGHTS. This is
// bubblewrap's shape: a small switch of op codes in the privileged
// process, requested by a planner that holds no kernel state itself.

const maxMessage = 1 << 20

type request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

type response struct {
	Err   string          `json:"err,omitempty"`
	Call  string          `json:"call,omitempty"`  // the failing syscall, strace form
	Errno int             `json:"errno,omitempty"` // its errno
	Step  *step.Step      `json:"step,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	More  bool            `json:"more,omitempty"` // another response follows (exec: started, then exited)
}

// errorFromResponse rebuilds the typed error the box process saw, so the
// session can explain an errno as well as print it.
func (r *response) error() error {
	if r.Err == "" {
		return nil
	}
	var cause error
	if r.Call != "" {
		cause = &step.SyscallError{Call: r.Call, Err: unix.Errno(r.Errno)}
	}
	return &remoteError{msg: r.Err, cause: cause}
}

// remoteError is an error the box process reported: its full message, and
// the failed syscall underneath for errors.As.
type remoteError struct {
	msg   string
	cause error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.cause }

func errorResponse(err error) response {
	r := response{Err: err.Error()}
	var se *step.SyscallError
	if errors.As(err, &se) {
		r.Call = se.Call
		r.Errno = int(step.Errno(se.Err))
	}
	return r
}

// conn is one end of the socketpair.
type conn struct {
	c *net.UnixConn

	// rbuf receives every message: allocating maxMessage per message
	// cost a megabyte of zeroing and a garbage collection every few
	// messages, in the session and in every box process.
	rmu  sync.Mutex
	rbuf []byte
}

// socketpair returns two connected SOCK_SEQPACKET sockets, both close-on-exec.
func socketpair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC): %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "stepbox-sock"), os.NewFile(uintptr(fds[1]), "stepbox-sock"), nil
}

func newConn(f *os.File) (*conn, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socket: not a unix socket")
	}
	return &conn{c: uc}, nil
}

func (c *conn) send(v any, files ...*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.c.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message into v and returns the files that came with it.
func (c *conn) recv(v any) ([]*os.File, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbuf == nil {
		c.rbuf = make([]byte, maxMessage)
	}
	buf := c.rbuf
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := c.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errEOF
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("parse SCM_RIGHTS: %w", err)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, fmt.Errorf("parse SCM_RIGHTS: %w", err)
			}
			for _, fd := range fds {
				unix.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), "passed-fd"))
			}
		}
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return files, nil
}

func (c *conn) close() error { return c.c.Close() }

var errEOF = errors.New("the box process closed its socket")

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
