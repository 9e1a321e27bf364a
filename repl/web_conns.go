package repl

import (
	"net"
	"sync"
)

// webMaxConns bounds the live view's open connections: a projector and a
// few laptops need a handful; each one costs the session a descriptor,
// and the session needs its descriptors for its boxes.
const webMaxConns = 32

// capListener accepts at most cap(slots) connections at a time. One over
// the bound is closed at once (its browser retries; EventSource does by
// itself) rather than left waiting, so it holds no descriptor and never
// delays a step.
type capListener struct {
	net.Listener
	slots chan struct{}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			c.Close()
		}
	}
}

// slotConn gives its slot back once, when closed.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
