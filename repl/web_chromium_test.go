package repl

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// chromium is Debian's headless Chromium driven over the DevTools
// protocol on a pipe (--remote-debugging-pipe: the browser reads
// requests on its fd 3 and writes answers on its fd 4, each message a
// JSON object ended by a NUL byte): no WebSocket and no port.
type chromium struct {
	cmd     *exec.Cmd
	w       *os.File
	msgs    chan cdpMessage
	id      int
	session string
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// needChromium finds Debian's chromium (.ci/deps.sh installs it); it
// skips without one, unless STEPBOX_MUST_WORK=1 forbids skipping.
func needChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("STEPBOX_MUST_WORK") == "1" {
		t.Fatal("the live view's test needs Debian's chromium (make deps installs it), and STEPBOX_MUST_WORK=1 forbids skipping it")
	}
	t.Skip("no chromium: make deps installs it")
	return ""
}

// startChromium starts a headless browser with one 1280×720 page; the
// test's cleanup closes it and ends its process group.
func startChromium(t *testing.T, path string) *chromium {
	t.Helper()
	toBrowser, browserIn, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	browserOut, fromBrowser, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	c := &chromium{cmd: cmd, w: browserIn, msgs: make(chan cdpMessage, 64)}
	go func() {
		r := bufio.NewReader(browserOut)
		defer close(c.msgs)
		for {
			raw, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m cdpMessage
			if json.Unmarshal(raw[:len(raw)-1], &m) == nil && m.ID != 0 {
				c.msgs <- m
			}
		}
	}()
	t.Cleanup(func() {
		c.call(t, "Browser.close", nil, nil)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		browserIn.Close()
		browserOut.Close()
	})
	var target struct{ TargetID string }
	c.call(t, "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	c.call(t, "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	c.session = attached.SessionID
	c.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": false}, nil)
	return c
}

// call sends one DevTools command to the page (or the browser, before
// there is a page) and decodes its result into out.
func (c *chromium) call(t *testing.T, method string, params any, out any) {
	t.Helper()
	if err := c.try(method, params, out); err != nil {
		t.Fatalf("chromium %s: %v", method, err)
	}
}

// try is call that returns the browser's error instead of failing.
func (c *chromium) try(method string, params any, out any) error {
	c.id++
	msg := map[string]any{"id": c.id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if c.session != "" && method != "Browser.close" {
		msg["sessionId"] = c.session
	}
	raw, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(raw, 0)); err != nil {
		return err
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				if method == "Browser.close" {
					return nil
				}
				return errors.New("the browser went away")
			}
			if m.ID != c.id {
				continue
			}
			if m.Error != nil {
				return errors.New(m.Error.Message)
			}
			if out != nil {
				return json.Unmarshal(m.Result, out)
			}
			return nil
		case <-deadline:
			return errors.New("no answer in 30s")
		}
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func (c *chromium) eval(t *testing.T, expr string, out any) {
	t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		t.Fatalf("in the page: %s: %s", expr, r.ExceptionDetails.Text)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			t.Fatalf("in the page: %s: %v (value %s)", expr, err, r.Result.Value)
		}
	}
}

// screenshot is the page as it shows now, as PNG.
func (c *chromium) screenshot(t *testing.T) []byte {
	t.Helper()
	var shot struct{ Data string }
	c.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return png
}

// waitSeq waits until the page shows redraw seq or a later one: the
// server's events reached the page and its script swapped them in.
func (c *chromium) waitSeq(t *testing.T, seq int) {
	t.Helper()
	expr := fmt.Sprintf(`new Promise(ok => { const t0 = Date.now(); (function poll() {
		const n = document.getElementById("now");
		if (n && Number(n.dataset.seq) >= %d) return ok(true);
		if (Date.now() - t0 > 20000) return ok(false);
		setTimeout(poll, 10); })(); })`, seq)
	var shown bool
	c.eval(t, expr, &shown)
	if !shown {
		var now string
		c.eval(t, `(document.getElementById("now")||{dataset:{}}).dataset.seq || "none"`, &now)
		t.Fatalf("the page never showed redraw %d (it shows %s)", seq, now)
	}
}
