package repl

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWebClientsNeverEndTheSessionOrItsBoxes: another user of the machine
// holds 50 idle connections to the live view, a browser with the token
// stops reading its stream, and others close theirs while the session
// writes to them (SIGPIPE). The session holds no more than its bound of
// descriptors for them, refuses the token-less with 403, runs every step,
// says nothing of its box being gone, and exits 0.
func TestWebClientsNeverEndTheSessionOrItsBoxes(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	cmd, stdin, stdout := startPiped(t, "--state-dir", t.TempDir(), "--web", webDefaultAddr, "run", "-")
	exited := make(chan struct{})
	t.Cleanup(func() {
		// A test that stopped early ends the session as a learner would
		// (end of script, then SIGTERM), so it tears its boxes down.
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Signal(os.Interrupt)
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	})
	lines := make(chan string, 1000)
	var all strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(exited)
	}()
	// upTo reads output until a line matches re.
	upTo := func(re *regexp.Regexp) []string {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stepbox ended before printing %v:\n%s", re, all.String())
				}
				all.WriteString(l + "\n")
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("no %v within a minute:\n%s", re, all.String())
			}
		}
	}
	say := func(line string) { fmt.Fprintln(stdin, line) }
	m := upTo(regexp.MustCompile(`live view at (http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32}))`))
	page, port, token := m[1], m[2], m[3]
	base := "http://127.0.0.1:" + port
	for _, path := range []string{"/", "/events"} {
		if code, body := get(t, base+path); code != http.StatusForbidden || strings.Contains(body, "<main") {
			t.Errorf("GET %s without the token = %d, want 403 and no page", path, code)
		}
	}
	if code, _ := get(t, page); code != http.StatusOK {
		t.Fatalf("GET %s = %d, want the page", page, code)
	}
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	say("new held")
	say("unshare pid mnt")
	say("exec echo step-one")
	upTo(regexp.MustCompile(`^step-one$`))
	before := fds()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	stream := "GET /events?token=" + token + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	// A browser that takes its stream and then reads no more.
	fmt.Fprint(dial(), stream)
	// Browsers that go away mid-stream: the session's next writes to
	// them fail with EPIPE, and SIGPIPE.
	for range 5 {
		c := dial()
		fmt.Fprint(c, stream)
		c.Read(make([]byte, 512))
		c.Close()
	}
	// Another user's 50 idle connections.
	for range 50 {
		dial()
	}
	time.Sleep(500 * time.Millisecond) // the server has accepted what it will
	if n := fds(); n > before+webMaxConns+4 {
		t.Errorf("the session holds %d descriptors, %d before the connections: more than its bound of %d for the live view", n, before, webMaxConns)
	}
	for i := range 4 {
		say(fmt.Sprintf("exec sh -c 'echo step-%d-$(head -c 20000 /dev/zero | tr \"\\\\0\" x)'", i))
		upTo(regexp.MustCompile(fmt.Sprintf(`^step-%d-x+$`, i)))
	}
	say("exec echo still-alive")
	upTo(regexp.MustCompile(`^still-alive$`))
	stdin.Close()
	for l := range lines {
		all.WriteString(l + "\n")
	}
	<-exited
	if strings.Contains(all.String(), "is gone") {
		t.Errorf("the session called its live box gone:\n%s", all.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("stepbox exited %d, want 0:\n%s", code, all.String())
	}
}

// startPiped starts stepbox with args, its input a pipe the test writes
// and its output (both streams) one the test reads.
func startPiped(t *testing.T, args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(stepboxBinary(t), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(args, "--state-dir"); i >= 0 && i+1 < len(args) {
		childStepbox(t, cmd, args[i+1], syscall.SIGTERM)
	}
	return cmd, stdin, stdout
}

// Another local user who holds every connection slot open without a
// request (no token shown) cannot keep the lecturer's browser out: a new
// connection takes the place of the oldest that has not shown the token,
// and one that has (the projector's event stream) keeps its place.
func TestIdleConnectionsWithoutTheTokenNeverKeepTheLecturerOut(t *testing.T) {
	s := startTestServer(t, webDefaultAddr)
	stream, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	fmt.Fprintf(stream, "GET /events?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", s.token)
	for s.Clients() == 0 {
		time.Sleep(time.Millisecond)
	}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 2 * webMaxConns {
		c, err := net.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond) // every one accepted
	if code, body := get(t, s.URL); code != http.StatusOK || !strings.Contains(body, "drawing") {
		t.Fatalf("with %d idle connections open, GET with the token = %d", len(idle), code)
	}
	if s.Clients() != 1 {
		t.Errorf("the projector's stream, which showed the token, was dropped: %d clients", s.Clients())
	}
	if n := s.ln.(*capListener).open(); n > webMaxConns {
		t.Errorf("%d connections held, more than %d", n, webMaxConns)
	}
}
