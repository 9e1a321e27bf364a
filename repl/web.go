package repl

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The live view's server (DESIGN.md, "The live view"): one read-only
// page and one stream of redraws. It runs no command and reads nothing
// from a request but the token.

//go:embed web/page.css
var pageCSS string

//go:embed web/page.js
var pageJS string

// pageCSP lets the page run its own inline script and style and nothing
// else: no other origin, no plugin, no form.
var pageCSP = fmt.Sprintf("default-src 'none'; script-src 'sha256-%s'; style-src 'sha256-%s'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	cspHash(pageJS), cspHash(pageCSS))

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// webKeepAlive is how often an idle stream gets a comment, so proxies and
// the browser keep it open and a vanished browser is noticed.
const webKeepAlive = 15 * time.Second

// webWriteTimeout bounds one write to a browser: a stalled one is dropped
// rather than holding its goroutine.
const webWriteTimeout = 5 * time.Second

// liveServer serves the page and its stream of redraws.
type liveServer struct {
	srv      *http.Server
	ln       net.Listener
	loopback bool   // listens on loopback only: the Host must say so too
	token    string // 128 random bits every request carries, on loopback too
	URL      string
	// Also are the same page at each of the machine's addresses, when it
	// listens on all of them (URL then names the machine).
	Also []string

	mu      sync.Mutex
	page    string // the last drawing, sent whole on connect
	clients map[chan string]struct{}
	done    chan struct{}
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// url is the page's address at host:port, with the token.
func (s *liveServer) url(hostPort string) string {
	return "http://" + hostPort + "/?token=" + s.token
}

// hostAddrs are the machine's global unicast addresses that a listener
// on unspecified (0.0.0.0 or ::) is reached at: IPv4 ones only for
// 0.0.0.0. None when the kernel cannot list them.
func hostAddrs(unspecified net.IP) []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	v4only := unspecified != nil && unspecified.To4() != nil
	var out []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() || (v4only && n.IP.To4() == nil) {
			continue
		}
		out = append(out, n.IP)
	}
	return out
}

// startLiveServer listens on addr (127.0.0.1:0 picks a free loopback
// port) and serves page as the first drawing. It makes a token that
// every request must carry, on loopback too: other users of the machine
// reach loopback as well (as Jupyter does).
func startLiveServer(addr, page string) (*liveServer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: give HOST:PORT, e.g. 127.0.0.1:8080, or 0.0.0.0:8080 for other machines: %w", addr, err)
	}
	s := &liveServer{page: page, loopback: isLoopback(host), clients: map[chan string]struct{}{}, done: make(chan struct{})}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("getrandom for the live view's token: %w", err)
	}
	s.token = hex.EncodeToString(b)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = &capListener{Listener: ln}
	shown := s.ln.Addr().(*net.TCPAddr)
	urlHost := net.JoinHostPort(host, fmt.Sprint(shown.Port))
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Every address of the machine: its name is what others type.
		name, err := os.Hostname()
		if err != nil {
			name = "THIS-MACHINE"
		}
		urlHost = net.JoinHostPort(name, fmt.Sprint(shown.Port))
	}
	s.URL = s.url(urlHost)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// A student's machine may not resolve this one's name: its
		// addresses too.
		for _, ip := range hostAddrs(ip) {
			s.Also = append(s.Also, s.url(net.JoinHostPort(ip.String(), fmt.Sprint(shown.Port))))
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.servePage)
	mux.HandleFunc("/events", s.serveEvents)
	// Errors go nowhere: the learner's terminal is no place for a
	// browser's (or another user's) broken connection.
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 8 << 10, ErrorLog: log.New(io.Discard, "", 0), ConnContext: withConn}
	go s.srv.Serve(s.ln)
	return s, nil
}

// allowed answers a request that may not see the page, and says whether
// it may: GET only, the token, and on loopback a Host that is loopback
// (a web page elsewhere cannot rebind its name to us). A refused
// connection is closed, so it holds none of the server's slots.
func (s *liveServer) allowed(w http.ResponseWriter, r *http.Request) bool {
	refuse := func(msg string, code int) bool {
		w.Header().Set("Connection", "close")
		http.Error(w, msg, code)
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return refuse("the live view is read-only: GET only", http.StatusMethodNotAllowed)
	}
	if s.loopback {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if !isLoopback(strings.Trim(host, "[]")) {
			return refuse("this live view answers only on loopback (127.0.0.1 or localhost)", http.StatusForbidden)
		}
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(s.token)) != 1 {
		return refuse("this live view needs its token: open the whole address stepbox printed, ?token=… included", http.StatusForbidden)
	}
	trust(r)
	return true
}

func (s *liveServer) headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// servePage sends the whole page with the last drawing in it: without
// JavaScript it is the last state (refreshed every few seconds).
func (s *liveServer) servePage(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	page := s.page
	s.mu.Unlock()
	s.headers(w, "text/html; charset=utf-8")
	theme := "dark"
	if r.URL.Query().Get("theme") == "light" {
		theme = "light"
	}
	fmt.Fprint(w, livePage(page, theme))
}

// livePage is the page around a drawing, in theme (dark or light: the
// address's ?theme=light picks it without a script).
func livePage(drawing, theme string) string {
	return `<!doctype html><html lang="en" class="` + theme + `"><head><meta charset="utf-8">` +
		`<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">` +
		`<title>stepbox · live view</title><noscript><meta http-equiv="refresh" content="3"></noscript>` +
		`<style>` + pageCSS + `</style></head><body>` +
		`<div id="bar"><span class="brand">stepbox · live view</span><span id="status">the state when this page loaded</span><button id="theme" type="button" hidden>light / dark (t)</button></div>` +
		`<main id="live">` + drawing + `</main><script>` + pageJS + `</script></body></html>`
}

// serveEvents streams each new drawing as a server-sent event "page".
func (s *liveServer) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	rc := http.NewResponseController(w)
	s.headers(w, "text/event-stream")
	ch := make(chan string, 1)
	s.mu.Lock()
	ch <- s.page
	s.clients[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, ch)
		s.mu.Unlock()
	}()
	keep := time.NewTicker(webKeepAlive)
	defer keep.Stop()
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-keep.C:
			msg = ": still here\n\n"
		case page := <-ch:
			msg = sseEvent("page", page)
		}
		rc.SetWriteDeadline(time.Now().Add(webWriteTimeout))
		if _, err := fmt.Fprint(w, msg); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sseEvent frames data as one event: a data line per line of it.
func sseEvent(name, data string) string {
	var b strings.Builder
	b.WriteString("event: " + name + "\n")
	for _, l := range strings.Split(data, "\n") {
		b.WriteString("data: " + l + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// publish makes page the drawing every browser shows. It never waits
// for a browser: one that has not taken the previous drawing gets this
// one in its place.
func (s *liveServer) publish(page string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if page == s.page {
		return // a second's reading that changed nothing
	}
	s.page = page
	for ch := range s.clients {
		select {
		case <-ch:
		default:
		}
		ch <- page
	}
}

// Clients is how many browsers are watching.
func (s *liveServer) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// Close stops the server and ends every stream.
func (s *liveServer) Close() error {
	close(s.done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	return err
}
