package repl

import (
	"bufio"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoWebServesTheLessonBesideThePlayback runs `stepbox demo 1
// --web` as a lecturer would, pressing a key (a line on stdin) at each
// pause: the address it prints serves the lesson's current step, drawn
// from the box the demo builds, then the lesson's end until a last key,
// and the server ends with the demo.
func TestDemoWebServesTheLessonBesideThePlayback(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	cmd, keys, stdout := startPiped(t, "--state-dir", t.TempDir(), "demo", "1", "--web")
	var out syncBuffer
	urls := make(chan string, 1)
	go func() {
		link := regexp.MustCompile(`live view: (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{32})`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := link.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("demo --web printed no address:\n%s", out.String())
	}
	// A key for each pause, once it shows: keys typed ahead would
	// answer later pauses, the last one too.
	answered := 0
	key := func() {
		if n := strings.Count(out.String(), "(q quits)"); n > answered {
			answered = n
			io.WriteString(keys, "\n")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Step 1 looks at the host; a later one makes the box: the demo
	// moves on until the page shows a step and its box.
	step := regexp.MustCompile(`Lesson 1 · step \d of \d`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		key()
		code, page := get(t, url)
		if code == 200 && step.MatchString(page) && strings.Contains(page, `<g class="proc box"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live view never showed a step of lesson 1 with its box:\n%s\n--- demo:\n%s", page, out.String())
		}
	}
	// At the end the page shows that the lesson is over and stays
	// until a key closes it.
	deadline = time.Now().Add(120 * time.Second)
	for !strings.Contains(out.String(), "close the live view") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo never reached its end:\n%s", out.String())
		}
		key()
	}
	time.Sleep(time.Second) // still there after the end
	if code, page := get(t, url); code != 200 || !strings.Contains(page, "Lesson 1 · finished") || !strings.Contains(page, "End of lesson 1") {
		t.Errorf("after the last step the live view answers %d:\n%s", code, page)
	}
	io.WriteString(keys, "\n")
	keys.Close()
	cmd.Wait()
	if _, err := exec.Command("curl", "-s", "--max-time", "2", url).Output(); err == nil {
		t.Errorf("the live view still answers at %s after the demo ended", url)
	}
}
