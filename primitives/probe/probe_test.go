package probe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What the session passes on the command line is what the probe reads.
func TestHostArgsRoundTrip(t *testing.T) {
	h := Host{File: "/etc/hostname", FileDev: 65024, FileIno: 1234, Disks: []Device{{Dev: 65024, Name: "vda"}, {Dev: 7 << 8, Name: "loop0"}},
		OwnRoot: true, HandleType: 1, Handle: []byte{0xde, 0xad, 0, 1}, PIDNS: 4026531836, CgroupNS: 4026531835, Cgroup2Opts: "memory_recursiveprot,nsdelegate", Hold: true}
	got, names, err := parseArgs(h.Args([]string{"disk", "dmesg"}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) || !reflect.DeepEqual(names, []string{"disk", "dmesg"}) {
		t.Errorf("parseArgs(Args) = %+v %v, want %+v", got, names, h)
	}
}

// An unknown probe name runs nothing and prints no report.
func TestMainRefusesAnUnknownProbe(t *testing.T) {
	var out, errs bytes.Buffer
	if code := Main(Host{}.Args([]string{"dmesg", "teleport"}), strings.NewReader(""), &out, &errs); code != 2 || out.Len() != 0 || !strings.Contains(errs.String(), `"teleport"`) {
		t.Errorf("Main with an unknown probe: exit %d, stdout %q, stderr %q", code, out.String(), errs.String())
	}
}

// Every way a probe reports itself open names the steps that close it.
func TestEveryOpenWayNamesItsClosingStep(t *testing.T) {
	for _, name := range Names() {
		if len(closers[name]) == 0 {
			t.Errorf("probe %s has no closing step", name)
		}
	}
	for name := range closers {
		if !Known(name) {
			t.Errorf("closers names %s, which is no probe", name)
		}
	}
}

// A probe opens a path the box controls only once it is the kernel's
// file: a FIFO (whose open would wait for a writer), a device or a file
// of another file system is named for what it is, and nothing blocks.
func TestOpenCheckedRefusesWhatTheBoxPutThere(t *testing.T) {
	dir := t.TempDir()
	fifo, file := filepath.Join(dir, "fifo"), filepath.Join(dir, "file")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("ffffffff81000000 T _text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for p, kind := range map[string]string{fifo: "is a FIFO", "/dev/null": "is a character device 1:3", dir: "is a directory", file: "is a file on another file system"} {
		f, err := openChecked(p, unix.O_RDONLY, procFile)
		var nk *notKernelError
		if !errors.As(err, &nk) || !strings.Contains(err.Error(), p+" "+kind) {
			t.Errorf("openChecked(%s) = %v, want it refused: %s", p, err, kind)
		}
		if f != nil {
			f.Close()
		}
	}
	if data, err := readChecked("/proc/self/stat", 4096, procFile); err != nil || len(data) == 0 {
		t.Errorf("readChecked(/proc/self/stat) = %q, %v", data, err)
	}
	if data, err := readChecked(file, 8, anyFile); err != nil || string(data) != "ffffffff" {
		t.Errorf("readChecked(%s, 8) = %q, %v: want its first 8 bytes", file, data, err)
	}
}

// An unknown state is valid with its own way only.
func TestUnknownIsValidOnlyAsNotTheKernelsFile(t *testing.T) {
	if !Valid(Result{Name: "kallsyms", State: Unknown, Via: "notkernel"}) || Valid(Result{Name: "kallsyms", State: Unknown, Via: "read"}) {
		t.Error("Valid: want unknown accepted via notkernel only")
	}
}

// With -hold the probe waits for the end of its stdin before it probes:
// the session ends it once it has read the probe's TracerPid, and a
// probe that ended before that first look had its report refused.
// Without, run by hand from a box's shell whose stdin is a terminal, it
// does not wait (it hung there, TestABoxCommandCannotTypeInto…).
func TestMainProbesOnlyOnceItsStdinEnds(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out, errs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(Host{Hold: true}.Args([]string{"kallsyms"}), r, &out, &errs) }()
	select {
	case code := <-done:
		t.Fatalf("the probe ran (exit %d) with its stdin still open:\n%s%s", code, out.String(), errs.String())
	case <-time.After(300 * time.Millisecond):
	}
	w.Close()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "kallsyms") {
			t.Errorf("exit %d once its stdin ended:\n%s%s", code, out.String(), errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the probe had not ended 30 s after its stdin did")
	}
}

func TestMainWithoutHoldProbesAtOnce(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var out, errs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(Host{}.Args([]string{"kallsyms"}), r, &out, &errs) }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d:\n%s%s", code, out.String(), errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the probe without -hold waited on its open stdin")
	}
}
