package repl

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// webMaxConns bounds the live view's open connections: a projector and a
// few laptops need a handful; each one costs the session a descriptor,
// and the session needs its descriptors for its boxes.
const webMaxConns = 32

// capListener accepts at most webMaxConns connections at a time. At the
// bound, a new connection takes the place of the oldest one that has not
// shown the token yet (another local user's idle connections cannot keep
// the lecturer's browser out); when every one has, the new one is closed
// at once (its browser retries; EventSource does by itself) rather than
// left waiting, so it holds no descriptor and never delays a step.
type capListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*slotConn // oldest first
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		sc := &slotConn{Conn: c, l: l}
		var evict *slotConn
		l.mu.Lock()
		if len(l.conns) >= webMaxConns {
			for _, o := range l.conns {
				if !o.trusted.Load() {
					evict = o
					break
				}
			}
		}
		admit := len(l.conns) < webMaxConns || evict != nil
		if admit {
			l.conns = append(l.conns, sc)
		}
		l.mu.Unlock()
		if evict != nil {
			evict.Close()
		}
		if admit {
			return sc, nil
		}
		c.Close()
	}
}

// drop forgets c, once it is closed.
func (l *capListener) drop(c *slotConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, o := range l.conns {
		if o == c {
			l.conns = append(l.conns[:i], l.conns[i+1:]...)
			return
		}
	}
}

// open is how many connections the listener holds.
func (l *capListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// slotConn gives its place back once, when closed; trusted once a request
// on it carried the token.
type slotConn struct {
	net.Conn
	l       *capListener
	once    sync.Once
	trusted atomic.Bool
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.drop(c) })
	return err
}

// connKey holds a request's *slotConn in its context (http.Server.ConnContext).
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// trust marks the connection of r as the token's holder's.
func trust(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*slotConn); ok {
		c.trusted.Store(true)
	}
}
