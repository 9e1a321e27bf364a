package repl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"stepbox/viz"
)

func startTestServer(t *testing.T, addr string) *liveServer {
	t.Helper()
	s, err := startLiveServer(addr, `<p id="drawing">first</p>`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// at is the address of rel (a path and query) on s, with its token.
func at(s *liveServer, rel string) string {
	base, err := url.Parse(s.URL)
	if err != nil {
		panic(err)
	}
	r, err := url.Parse(rel)
	if err != nil {
		panic(err)
	}
	u := base.ResolveReference(r)
	q := u.Query()
	q.Set("token", s.token)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestLoopbackLiveViewRefusesRequestsWithoutItsToken: other users of the
// machine reach loopback too, and the page shows what the learner's
// commands print: the page and its stream need the printed token.
func TestLoopbackLiveViewRefusesRequestsWithoutItsToken(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	if ip := s.ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Fatalf("listens on %v, want loopback", ip)
	}
	if len(s.token) != 32 || !strings.HasSuffix(s.URL, "/?token="+s.token) {
		t.Fatalf("printed address %s, want one carrying 128 random bits in hex", s.URL)
	}
	if other, _ := startLiveServer(webDefaultAddr, ""); other != nil {
		other.Close()
		if other.token == s.token {
			t.Errorf("two servers got the same token %s", s.token)
		}
	}
	code, body := get(t, s.URL)
	if code != http.StatusOK || !strings.Contains(body, `<p id="drawing">first</p>`) {
		t.Fatalf("GET %s = %d, want the page with the drawing:\n%s", s.URL, code, body)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", s.ln.Addr().(*net.TCPAddr).Port)
	for _, path := range []string{"/", "/events", "/?theme=light", "/?token=", "/events?token=" + s.token[:31], "/?token=" + strings.ToUpper(s.token)} {
		if code, body := get(t, base+path); code != http.StatusForbidden || strings.Contains(body, "drawing") {
			t.Errorf("GET %s = %d, want 403 and no page", path, code)
		}
	}
	// A page elsewhere whose name was rebound to 127.0.0.1 sends its own Host.
	if code, _ := get(t, s.URL, "Host", "attacker.example:80"); code != http.StatusForbidden {
		t.Errorf("a request for Host attacker.example got %d, want 403", code)
	}
}

// TestThemeInTheAddressNeedsNoScript: ?theme=light is the light theme
// as the server sends the page, for a projector's kiosk with no keyboard
// or no JavaScript; anything else is the dark one.
func TestThemeInTheAddressNeedsNoScript(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	for query, want := range map[string]string{"?theme=light": `class="light"`, "": `class="dark"`, "?theme=<x>": `class="dark"`} {
		if code, body := get(t, at(s, query)); code != http.StatusOK || !strings.Contains(body, `<html lang="en" `+want+`>`) {
			t.Errorf("GET %s = %d, want <html %s>:\n%.200s", at(s, query), code, want, body)
		}
	}
}

func TestLiveViewBeyondLoopbackRefusesRequestsWithoutItsToken(t *testing.T) {
	s := startTestServer(t, "0.0.0.0:0")
	if len(s.token) != 32 {
		t.Fatalf("token %q, want 128 random bits in hex", s.token)
	}
	if !strings.HasSuffix(s.URL, "?token="+s.token) {
		t.Errorf("printed address %s does not carry the token", s.URL)
	}
	// Besides the machine's name, each of its IPv4 addresses the kernel
	// has (a student's machine may not resolve the name), with the token.
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("RTM_GETADDR: %v", err)
	}
	var want []string
	for _, a := range addrs {
		if a.IP.IsGlobalUnicast() {
			want = append(want, fmt.Sprintf("http://%s/?token=%s", net.JoinHostPort(a.IP.String(), fmt.Sprint(s.ln.Addr().(*net.TCPAddr).Port)), s.token))
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(s.Also))
	if !slices.Equal(got, want) {
		t.Errorf("printed also %v; the kernel's IPv4 addresses make %v", got, want)
	}
	// Ask over loopback only: the test talks to no other address.
	base := fmt.Sprintf("http://127.0.0.1:%d", s.ln.Addr().(*net.TCPAddr).Port)
	for _, path := range []string{"/", "/events", "/?token=", "/?token=" + strings.Repeat("0", 32), "/events?token=x"} {
		if code, body := get(t, base+path); code != http.StatusForbidden || strings.Contains(body, "drawing") {
			t.Errorf("GET %s = %d, want 403 and no page", path, code)
		}
	}
	if code, _ := get(t, base+"/?token="+s.token); code != http.StatusOK {
		t.Errorf("GET with the token = %d, want 200", code)
	}
	// The page's script asks for its events with the page's own query.
	resp, err := http.Get(base + "/events?token=" + s.token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readEvent(t, bufio.NewReader(resp.Body)); resp.StatusCode != http.StatusOK || got != `<p id="drawing">first</p>` {
		t.Errorf("events with the token: %d %q", resp.StatusCode, got)
	}
}

func TestLiveViewAcceptsNothingButGET(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req, _ := http.NewRequest(m, s.URL, strings.NewReader("exec rm -rf /"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s = %d, want 405", m, resp.StatusCode)
		}
	}
	if code, _ := get(t, at(s, "run?line=reset")); code != http.StatusNotFound {
		t.Errorf("GET /run = %d, want 404", code)
	}
}

// TestLivePageLoadsNothingFromElsewhere: no src, href, import or url()
// in the page, and a policy that would block them anyway.
func TestLivePageLoadsNothingFromElsewhere(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`(?i)\b(src|href)\s*=|@import|url\(|//[a-z0-9.-]+\.(com|net|org|io)`).Find(body); m != nil {
		t.Errorf("the page refers to something outside itself: %q", m)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
}

// readEvent reads one server-sent event's data.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && data != nil:
			return strings.Join(data, "\n")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

func TestLiveViewStreamsEachDrawingWhole(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	resp, err := http.Get(at(s, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if got := readEvent(t, r); got != `<p id="drawing">first</p>` {
		t.Fatalf("first event %q, want the current drawing", got)
	}
	two := "<p>line one</p>\n<p>line two</p>"
	s.publish(two)
	if got := readEvent(t, r); got != two {
		t.Fatalf("event %q, want %q", got, two)
	}
}

// TestSlowBrowserNeverBlocksAStep: a browser that stops reading its
// stream must not hold up publishing, which the shell does after every
// step; it gets the newest drawing when it reads again.
func TestSlowBrowserNeverBlocksAStep(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	conn, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /events?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", s.token)
	for s.Clients() == 0 {
		time.Sleep(time.Millisecond)
	}
	big := strings.Repeat("x", 256<<10)
	done := make(chan struct{})
	go func() {
		for i := range 200 {
			s.publish(fmt.Sprintf("<p>%d</p>%s", i, big)) // 50 MB that nobody reads
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("publishing waited for a browser that does not read")
	}
}

// TestLiveViewBarsMoveWhileACommandRuns: between steps the cgroup bars
// are read again every second, from the host's cgroup files alone, so
// a running command's tasks show on the page before it ends.
func TestLiveViewBarsMoveWhileACommandRuns(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "unshare pid mnt", "cgroup new", "cgroup attach")
	if err := sh.StartWeb(webDefaultAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.StopWeb() })
	resp, err := http.Get(at(sh.web.srv, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pids := regexp.MustCompile(`data-resource="pids" data-current="(\d+)"`)
	r := bufio.NewReader(resp.Body)
	current := func() int {
		m := pids.FindStringSubmatch(readEvent(t, r))
		if m == nil {
			t.Fatal("the drawing has no pids bar")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	idle := current()
	done := make(chan error, 1)
	go func() {
		done <- sh.Execute(context.Background(), "exec sh -c 'for i in 1 2 3 4 5 6; do sleep 5 & done; wait'")
	}()
	// The sleeps are reaped before the step's own redraw: only a drawing
	// made while they ran can count them. Without one the stream is cut.
	stop := time.AfterFunc(30*time.Second, func() { resp.Body.Close() })
	defer stop.Stop()
	for n := current(); n < idle+6; n = current() {
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLiveViewDrawsTheNewestBoxBesideTheCurrentOne: with three boxes,
// the page draws the current one and the one made last.
func TestLiveViewDrawsTheNewestBoxBesideTheCurrentOne(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new a", "new b", "new c", "use a")
	var names []string
	for _, b := range liveBoxes(sh) {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, []string{"a", "c"}) {
		t.Errorf("the page draws boxes %v, want the current a and the newest c, in that order", names)
	}
	// The two drawn stay in the order they were made, whichever is
	// current: `use` never swaps their places.
	run(t, sh, out, "use c")
	names = nil
	for _, b := range liveBoxes(sh) {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, []string{"b", "c"}) {
		t.Errorf("after use c the page draws boxes %v, want b then c, in the order they were made", names)
	}
}

// TestAStepsLimitStaysMarkedWhenATickReadItFirst: a tick that reads the
// cgroup while `cgroup limit` runs sees the new limit before the step's
// own redraw does; the step still marks the limit it changed.
func TestAStepsLimitStaysMarkedWhenATickReadItFirst(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "cgroup new")
	if err := sh.StartWeb(webDefaultAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.StopWeb() })
	const line = "cgroup limit pids 20"
	sh.web.beforeLine(line)
	if _, _, err := sh.Current().CgroupLimit("pids", "20"); err != nil {
		t.Fatal(err)
	}
	sh.web.refresh() // a tick while the step runs
	sh.web.afterLine(sh, line, nil)
	page := viz.LivePage(sh.web.state)
	bar := regexp.MustCompile(`<g class="bar ([a-z ]+)" data-resource="pids" data-current="\d+" data-max="20"`).FindStringSubmatch(page)
	if bar == nil {
		t.Fatalf("no pids bar with limit 20 in the drawing:\n%s", page)
	}
	if !strings.Contains(bar[1], "changed") {
		t.Errorf("the pids bar the step limited is drawn with class %q, not marked as changed", bar[1])
	}
}

// TestAChangedLimitStaysMarkedUntilTheNextStep: the limit `cgroup
// limit` set stays marked through looks (`ns`, `cgroup`), as the
// namespaces a step made do, and the next step clears it.
func TestAChangedLimitStaysMarkedUntilTheNextStep(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new web", "cgroup new")
	if err := sh.StartWeb(webDefaultAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.StopWeb() })
	bar := regexp.MustCompile(`<g class="bar ([a-z ]+)" data-resource="([a-z]+)" data-current="\d+" data-max="(\w+)"`)
	for _, s := range []struct{ line, marked string }{
		{"cgroup limit pids 20", "pids=20"},
		{"ns", "pids=20"},     // a look
		{"cgroup", "pids=20"}, // another look
		{"cgroup limit pids 25", "pids=25"},
		{"cgroup attach", ""}, // a step that sets no limit
		{"ns", ""},
	} {
		run(t, sh, out, s.line)
		page := viz.LivePage(sh.web.state)
		var marked []string
		for _, m := range bar.FindAllStringSubmatch(page, -1) {
			if strings.Contains(m[1], "changed") {
				marked = append(marked, m[2]+"="+m[3])
			}
		}
		if got := strings.Join(marked, " "); got != s.marked {
			t.Errorf("after %q the bars marked as changed are %q, want %q", s.line, got, s.marked)
		}
	}
}
