package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// goneSession names a session no PID can have (PIDs stay below
// PID_MAX_LIMIT, 4194304): the sweep takes it for a crashed one.
const goneSession = "4194304-1"

// plantLedger writes lines as the ledger of box web of a gone session
// in the state dir dirs, as someone other than stepbox could.
func plantLedger(t *testing.T, dirs Dirs, lines ...Resource) string {
	t.Helper()
	dir := filepath.Join(dirs.Run, "sessions", goneSession, "boxes", "web")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := &Ledger{path: filepath.Join(dir, "ledger.jsonl")}
	for _, r := range lines {
		if err := l.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startDecoy starts a process that is nobody's box: a sweep must not end it.
func startDecoy(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func alive(t *testing.T, cmd *exec.Cmd) bool {
	t.Helper()
	st, err := procState(cmd.Process.Pid)
	return err == nil && st != "Z"
}

// sweepSaid is everything a sweep said: what it removed and ignored,
// and its errors.
func sweepSaid(rep SweepReport, err error) string {
	said := strings.Join(rep.Removed, "\n")
	if err != nil {
		said += "\n" + err.Error()
	}
	return said
}

func stateDirs(t *testing.T) Dirs {
	base := t.TempDir()
	return Dirs{Run: filepath.Join(base, "run"), Lib: filepath.Join(base, "lib")}
}

func TestStateDirOthersCouldWriteIsRefused(t *testing.T) {
	needRoot(t)
	cases := map[string]func(base string) Dirs{
		"writable by everyone": func(base string) Dirs {
			d := Dirs{Run: filepath.Join(base, "run"), Lib: filepath.Join(base, "lib")}
			os.MkdirAll(d.Run, 0o700)
			os.Chmod(d.Run, 0o777)
			return d
		},
		"another user's": func(base string) Dirs {
			d := Dirs{Run: filepath.Join(base, "run"), Lib: filepath.Join(base, "lib")}
			os.MkdirAll(d.Lib, 0o700)
			os.Chown(d.Lib, 65534, 65534)
			return d
		},
		// /tmp/stepbox-UID of old: a directory above it another user
		// made, or can rename, can be swapped for one of theirs.
		"under another user's directory": func(base string) Dirs {
			other := filepath.Join(base, "shared")
			os.Mkdir(other, 0o755)
			os.Chown(other, 65534, 65534)
			return Dirs{Run: filepath.Join(other, "run"), Lib: filepath.Join(other, "lib")}
		},
		"under a group-writable directory without the sticky bit": func(base string) Dirs {
			other := filepath.Join(base, "shared")
			os.Mkdir(other, 0o700)
			os.Chmod(other, 0o775)
			return Dirs{Run: filepath.Join(other, "run"), Lib: filepath.Join(other, "lib")}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			dirs := mk(t.TempDir())
			if s, err := OpenSession(dirs); err == nil {
				s.Close()
				t.Fatalf("OpenSession(%+v) used a state dir someone else could have written", dirs)
			} else if !strings.Contains(err.Error(), "state dir") {
				t.Errorf("the error does not name the state dir: %v", err)
			}
			if _, err := Sweep(dirs); err == nil {
				t.Errorf("Sweep(%+v) acted on a state dir someone else could have written", dirs)
			}
		})
	}
	// A sticky directory others can write (as /tmp) above one's own is fine.
	base := t.TempDir()
	sticky := filepath.Join(base, "tmp")
	os.Mkdir(sticky, 0o700)
	unix.Chmod(sticky, 0o1777)
	s, err := OpenSession(Dirs{Run: filepath.Join(sticky, "run"), Lib: filepath.Join(sticky, "lib")})
	if err != nil {
		t.Fatalf("a state dir of one's own under a sticky directory was refused: %v", err)
	}
	s.Close()
}

func TestSweepSparesAProcessAPlantedLedgerNames(t *testing.T) {
	needRoot(t)
	decoy := startDecoy(t)
	start, err := startTime(decoy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	dirs := stateDirs(t)
	plantLedger(t, dirs,
		Resource{Kind: ResProcess, PID: decoy.Process.Pid, Start: start, Note: "box process"},
		// "start": 0 turned the PID-reuse check off.
		Resource{Kind: ResProcess, PID: decoy.Process.Pid, Note: "PID 1"},
	)
	rep, err := Sweep(dirs)
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d, which no box of the ledger's session started", decoy.Process.Pid)
	}
	if said := sweepSaid(rep, err); !strings.Contains(said, "refusing to end PID") {
		t.Errorf("the sweep did not say it refused the planted lines: %v", err)
	}
}

func TestSweepSparesADirectoryAPlantedLedgerNames(t *testing.T) {
	needRoot(t)
	dirs := stateDirs(t)
	decoy := filepath.Join(t.TempDir(), "decoy")
	keep := filepath.Join(decoy, "sub", "keep")
	if err := os.MkdirAll(filepath.Dir(keep), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keep, []byte("mine"), 0o600)
	box := filepath.Join(dirs.Run, "sessions", goneSession, "boxes", "web")
	os.MkdirAll(box, 0o700)
	// The box's overlay dir, made a symlink to the decoy.
	os.Symlink(decoy, filepath.Join(box, "overlay"))
	plantLedger(t, dirs,
		Resource{Kind: ResDir, Path: filepath.Join(decoy, "sub")},
		Resource{Kind: ResDir, Path: box + "/../../../../../../../../../../../../.." + decoy + "/sub"},
		Resource{Kind: ResDir, Path: filepath.Join(box, "overlay", "sub")},
	)
	// A second gone session whose boxes dir leads to the decoy.
	other := filepath.Join(dirs.Run, "sessions", "4194304-2")
	os.MkdirAll(other, 0o700)
	os.Symlink(decoy, filepath.Join(other, "boxes"))
	rep, err := Sweep(dirs)
	if b, rerr := os.ReadFile(keep); rerr != nil || string(b) != "mine" {
		t.Fatalf("the sweep removed %s, which the planted ledger named: %v", keep, rerr)
	}
	if said := sweepSaid(rep, err); !strings.Contains(said, "refusing to remove") || !strings.Contains(said, "left alone") {
		t.Errorf("the sweep did not say it refused the planted lines: %v", err)
	}
}

// testPlace opens the host's cgroups and says where stepbox would put
// its parent cgroup: the test's own cgroup, where tests make theirs.
func testPlace(t *testing.T) (cgroups.Hierarchy, cgroups.Placement) {
	t.Helper()
	fsys, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		t.Fatal(err)
	}
	h, err := cgroups.Open(cgroups.DefaultRoot, fsys, os.Getpid())
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	place, err := h.Place("")
	if err != nil {
		t.Fatal(err)
	}
	for i := range place.Dirs {
		place.Dirs[i].Path = cgroups.ExistingAncestor(place.Dirs[i].Path)
	}
	return h, place
}

// decoyIn makes the cgroups dirs (each inside the one before), of the
// test's own, and starts a decoy process in the last; both go at the
// test's end.
func decoyIn(t *testing.T, dirs ...string) *exec.Cmd {
	t.Helper()
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	decoy := startDecoy(t)
	t.Cleanup(func() {
		decoy.Process.Kill()
		decoy.Wait()
		for _, d := range slices.Backward(dirs) {
			for i := 0; i < 50; i++ {
				if err := unix.Rmdir(d); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := os.Stat(d); err == nil {
				t.Errorf("could not remove the decoy cgroup %s", d)
			}
		}
	})
	if err := os.WriteFile(filepath.Join(dirs[len(dirs)-1], "cgroup.procs"), []byte(strconv.Itoa(decoy.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return decoy
}

func TestSweepSparesACgroupReachedPastTheParentGuard(t *testing.T) {
	needRoot(t)
	_, place := testPlace(t)
	// The decoy: a cgroup of the test's own, where stepbox would put its
	// parent, holding a process of the test's own.
	at := place.Dirs[len(place.Dirs)-1]
	decoyCg := filepath.Join(at.Path, "sbtest-decoy-"+strconv.Itoa(os.Getpid()))
	decoy := decoyIn(t, decoyCg)
	// The old guard wanted "/stepbox-" somewhere in the path: a directory
	// of that name in the state dir, then `..` back to the root.
	dirs := stateDirs(t)
	guard := filepath.Join(dirs.Run, "stepbox-"+goneSession)
	os.MkdirAll(guard, 0o700)
	up := strings.Repeat("/..", strings.Count(guard, "/"))
	g := cgroups.Group{Name: "stepbox-" + goneSession, Dirs: []cgroups.Dir{{Hierarchy: at.Hierarchy, Path: guard + up + decoyCg, Controllers: at.Controllers}}}
	raw, _ := json.Marshal(g)
	// And a parent that is gone, with controllers "switched on" in the
	// test's cgroup, which is not above it.
	sub, _ := os.ReadFile(filepath.Join(decoyCg, "cgroup.subtree_control"))
	gone := cgroups.Group{Name: "stepbox-" + goneSession, Dirs: []cgroups.Dir{{Hierarchy: at.Hierarchy, Path: filepath.Join(at.Path, "stepbox-"+goneSession)}},
		Enabled: []cgroups.Dir{{Path: decoyCg, Controllers: []string{"pids"}}}}
	rawGone, _ := json.Marshal(gone)
	plantLedger(t, dirs, Resource{Kind: ResCgroup, Group: raw, Note: "the box's cgroup"}, Resource{Kind: ResCgroup, Group: rawGone})
	os.WriteFile(filepath.Join(dirs.Run, "sessions", goneSession, "ledger.jsonl"), []byte(`{"kind":"cgroup","group":`+string(raw)+"}\n"), 0o600)

	rep, err := Sweep(dirs)
	if _, serr := os.Stat(decoyCg); serr != nil {
		t.Fatalf("the sweep removed the test's cgroup %s: %v", decoyCg, serr)
	}
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d in the test's cgroup %s", decoy.Process.Pid, decoyCg)
	}
	if b, _ := os.ReadFile(filepath.Join(decoyCg, "cgroup.procs")); !strings.Contains(string(b), strconv.Itoa(decoy.Process.Pid)) {
		t.Errorf("the decoy left its cgroup: cgroup.procs reads %q", b)
	}
	if said := sweepSaid(rep, err); !strings.Contains(said, "refusing to remove cgroup") || !strings.Contains(said, "refusing to switch controllers off") {
		t.Errorf("the sweep did not say it refused the planted lines: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(decoyCg, "cgroup.subtree_control")); string(now) != string(sub) {
		t.Errorf("the sweep changed the test's cgroup.subtree_control: %q, was %q", now, sub)
	}
	decoy.Process.Signal(syscall.SIGKILL)
}

// A ledger's namespace lines are checked as its other lines are: one
// naming the host's own namespace is refused (every process on the host
// is in it), and a process in a namespace whose number a ledger names is
// ended only once the host shows it is the box's: a freed namespace's
// number goes to the next namespace made, here the decoy's.
func TestSweepSparesProcessesInNamespacesAPlantedLedgerNames(t *testing.T) {
	needRoot(t)
	decoy := exec.Command("sleep", "60")
	decoy.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	decoy.Env = []string{} // no marker another test left in this process's environment
	if err := decoy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { decoy.Process.Kill(); decoy.Wait() })
	uts, err := nsOf(strconv.Itoa(decoy.Process.Pid), "uts")
	if err != nil {
		t.Fatal(err)
	}
	host, err := nsOf("self", "mnt")
	if err != nil {
		t.Fatal(err)
	}
	dirs := stateDirs(t)
	plantLedger(t, dirs,
		Resource{Kind: ResNamespace, NS: "mnt", Dev: host.dev, Ino: host.ino},
		Resource{Kind: ResNamespace, NS: "uts", Dev: uts.dev, Ino: uts.ino},
	)
	rep, err := Sweep(dirs)
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d, in a namespace the planted ledger named", decoy.Process.Pid)
	}
	if said := sweepSaid(rep, err); !strings.Contains(said, "refusing mnt namespace") {
		t.Errorf("the sweep did not refuse the host's own mount namespace: %v", err)
	}
	// Once the host's line is gone, the uts line alone is searched.
	os.Remove(filepath.Join(dirs.Run, "sessions", goneSession, "boxes", "web", "ledger.jsonl"))
	plantLedger(t, dirs, Resource{Kind: ResNamespace, NS: "uts", Dev: uts.dev, Ino: uts.ino})
	rep, err = Sweep(dirs)
	if err != nil {
		t.Fatal(err)
	}
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d on a namespace number alone", decoy.Process.Pid)
	}
	want := "left PID " + strconv.Itoa(decoy.Process.Pid) + ` ("sleep", in the box's uts namespace) alone`
	if !slices.ContainsFunc(rep.Removed, func(l string) bool { return strings.Contains(l, want) }) {
		t.Errorf("the sweep does not name the process it left alone (want %q): %q", want, rep.Removed)
	}
}

// ut25 F3: a planted cgroup path that goes through the gone session's
// parent name and `..` into a live session's box cgroup. The parent does
// not exist, so the path does not resolve as written; the cleaned path,
// which is what teardown opens, is the live cgroup. It is refused, and
// its process is neither ended nor reported stuck.
func TestSweepRefusesACgroupPathThroughTheGoneParentIntoALiveOne(t *testing.T) {
	needRoot(t)
	_, place := testPlace(t)
	at := place.Dirs[len(place.Dirs)-1]
	live := filepath.Join(at.Path, "sbtest-live-"+strconv.Itoa(os.Getpid()))
	victim := filepath.Join(live, "a.track")
	decoy := decoyIn(t, live, victim)
	parent := cgroups.ParentName(goneSession)
	planted := filepath.Join(at.Path, parent) + "/../" + filepath.Base(live) + "/a.track"
	g := cgroups.Group{Name: parent, Dirs: []cgroups.Dir{{Hierarchy: at.Hierarchy, Path: planted, Controllers: at.Controllers}}}
	raw, _ := json.Marshal(g)
	dirs := stateDirs(t)
	plantLedger(t, dirs, Resource{Kind: ResCgroup, Group: raw, Note: "the box's cgroup"})

	rep, err := Sweep(dirs)
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d in the test's cgroup %s", decoy.Process.Pid, victim)
	}
	if _, serr := os.Stat(victim); serr != nil {
		t.Fatalf("the sweep removed the test's cgroup %s: %v", victim, serr)
	}
	if said := sweepSaid(rep, err); !strings.Contains(said, "refusing to remove cgroup "+planted) || !strings.Contains(said, "which is not "+parent) {
		t.Errorf("the sweep did not refuse the planted line: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "after SIGKILL") {
		t.Errorf("the sweep claims it sent SIGKILL into the test's cgroup: %v", err)
	}
}

// ut27 F9: a box that could write its ledger planted lines the sweep
// refuses. They are never acted on, the lines that validate are undone,
// and once nothing of the session is left the session's directory goes:
// kept, every cleanup refused the same lines again, for ever.
func TestSweepRemovesASessionWhoseLedgerHoldsRefusedLinesOnce(t *testing.T) {
	needRoot(t)
	decoy := startDecoy(t)
	start, err := startTime(decoy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := stateDirs(t)
	session := filepath.Join(dirs.Run, "sessions", goneSession)
	box := filepath.Join(session, "boxes", "web")
	own := filepath.Join(box, "overlay")
	if err := os.MkdirAll(own, 0o700); err != nil {
		t.Fatal(err)
	}
	plantLedger(t, dirs,
		Resource{Kind: ResDir, Path: own},
		Resource{Kind: ResProcess, PID: decoy.Process.Pid, Start: start, Note: "planted"},
		Resource{Kind: ResDir, Path: outside},
	)
	rep, err := Sweep(dirs)
	if err != nil {
		t.Errorf("the sweep failed on a ledger holding only its own lines and refused ones: %v", err)
	}
	if !alive(t, decoy) {
		t.Fatalf("the sweep ended PID %d, which a planted line named", decoy.Process.Pid)
	}
	if b, rerr := os.ReadFile(outside); rerr != nil || string(b) != "mine" {
		t.Fatalf("the sweep removed %s, outside the state dir: %v", outside, rerr)
	}
	if _, serr := os.Stat(session); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the session's directory %s is kept for a next cleanup that would refuse the same lines: %v", session, serr)
	}
	said := sweepSaid(rep, err)
	for _, want := range []string{"ignored: ledger: refusing to end PID " + strconv.Itoa(decoy.Process.Pid), "ignored: ledger: refusing to remove " + outside} {
		if !strings.Contains(said, want) {
			t.Errorf("the sweep does not say what it ignored (want %q):\n%s", want, said)
		}
	}
	if slices.Contains(rep.Removed, processLine(decoy.Process.Pid, "web")) || strings.Contains(said, "ended PID "+strconv.Itoa(decoy.Process.Pid)) {
		t.Errorf("the sweep says it ended PID %d, which it refused:\n%s", decoy.Process.Pid, said)
	}
	if !slices.Contains(rep.Sessions, goneSession) {
		t.Errorf("the sweep does not report session %s removed: %q", goneSession, rep.Sessions)
	}
}

// The sweep acts only on state the caller alone could have written: a
// sessions/ directory, a session's or a box's directory, or a ledger
// that another uid owns, or that its group may write, is refused and
// named, and what its ledger names is left (ut30 F2: root's cleanup
// acted on a ledger uid 1001 wrote in a sessions/ it owned).
func TestSweepRefusesStateSomeoneElseCouldHaveWritten(t *testing.T) {
	needRoot(t)
	const other = 1001
	for name, spoil := range map[string]func(run, box string) string{
		"sessions/ of another uid": func(run, box string) string {
			return filepath.Join(run, "sessions")
		},
		"a session dir of another uid": func(run, box string) string {
			return filepath.Join(run, "sessions", goneSession)
		},
		"a box dir of another uid": func(run, box string) string { return box },
		"a ledger of another uid":  func(run, box string) string { return filepath.Join(box, "ledger.jsonl") },
		"a ledger its group may write": func(run, box string) string {
			p := filepath.Join(box, "ledger.jsonl")
			if err := os.Chmod(p, 0o620); err != nil {
				t.Fatal(err)
			}
			return p
		},
	} {
		t.Run(name, func(t *testing.T) {
			dirs := stateDirs(t)
			if _, err := dirs.makeTrusted(); err != nil {
				t.Fatal(err)
			}
			box := filepath.Join(dirs.Run, "sessions", goneSession, "boxes", "web")
			victim := filepath.Join(box, "victim")
			plantLedger(t, dirs, Resource{Kind: ResDir, Path: victim})
			if err := os.Mkdir(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			spoilt := spoil(dirs.Run, box)
			if !strings.Contains(name, "group") {
				if err := os.Chown(spoilt, other, other); err != nil {
					t.Fatal(err)
				}
			}
			said := sweepSaid(Sweep(dirs))
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("the sweep acted on a ledger someone else could have written: %v\nit said:\n%s", err, said)
			}
			why := fmt.Sprintf("belongs to uid %d", other)
			if strings.Contains(name, "group") {
				why = "is writable by its group"
			}
			if !strings.Contains(said, spoilt+" "+why) {
				t.Errorf("the sweep does not name %s (%q):\n%s", spoilt, why, said)
			}
		})
	}
}

// Below the session's parent, teardown ends and removes only what the
// boxes' ledgers say they made (ut32 F1): a planted zz, or a b5.track a
// refused `new b5` found there already (not made), is not the session's.
// An empty NAME-ID of a box of the session is: `cgroup new` made it and
// the session crashed before its ledger line (box_cgroup.go). One with a
// process in it, or of a box the session has not, is not.
func TestMadeCgroupsAreWhatTheBoxesLedgersSayTheyMade(t *testing.T) {
	dir, parent := t.TempDir(), t.TempDir() // the session; its parent, as plain directories
	line := func(box string, rs ...Resource) {
		l, err := openLedger(filepath.Join(dir, "boxes", box))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if err := l.Add(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	group := func(name string) Resource {
		raw, _ := json.Marshal(cgroups.Group{Name: name, Track: []cgroups.Dir{{Path: filepath.Join(parent, name)}}})
		return Resource{Kind: ResCgroup, Group: raw}
	}
	line("a1", group("a1.track"), group("a1-0123456789ab"))
	line("b5", group("b5.track"), Resource{Kind: ResNotMade, Path: filepath.Join(parent, "b5.track")})
	for _, d := range []string{"a1-aaaaaaaaaaaa", "b5-bbbbbbbbbbbb", "zz-cccccccccccc"} {
		if err := os.Mkdir(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A process in it: not an empty cgroup a crash left.
	if err := os.WriteFile(filepath.Join(parent, "b5-bbbbbbbbbbbb", "cgroup.procs"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	made := madeCgroups(dir)
	for name, want := range map[string]bool{
		"a1.track": true, "a1-0123456789ab": true, "a1-aaaaaaaaaaaa": true,
		"zz": false, "b5.track": false, "b5-bbbbbbbbbbbb": false, "zz-cccccccccccc": false, "a1-short": false,
	} {
		if got := made(filepath.Join(parent, name)); got != want {
			t.Errorf("made(%s) = %v, want %v", name, got, want)
		}
	}

}

// ut33 F5: a --cgroup-parent naming a control file (/cgroup.procs) left
// a session ledger naming its parent cgroup under that file in every
// hierarchy. No cgroup can be there (ENOTDIR), and every cleanup failed
// on it and kept the ledger for the next, for ever. The sweep drops such
// a directory, saying so by its path, removes the one of the same line
// that is there, and the session's directory goes.
func TestSweepDropsACgroupLineUnderAFile(t *testing.T) {
	needRoot(t)
	_, place := testPlace(t)
	parent := cgroups.ParentName(goneSession)
	g := cgroups.Group{Name: parent}
	var nowhere []string
	for _, d := range place.Dirs {
		p := filepath.Join(d.Path, "cgroup.procs", parent)
		nowhere = append(nowhere, p)
		g.Dirs = append(g.Dirs, cgroups.Dir{Hierarchy: d.Hierarchy, Path: p, Controllers: d.Controllers})
	}
	at := place.Dirs[0]
	there := filepath.Join(at.Path, parent)
	if err := os.Mkdir(there, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(there) })
	g.Dirs = append(g.Dirs, cgroups.Dir{Hierarchy: at.Hierarchy, Path: there, Controllers: at.Controllers})
	raw, _ := json.Marshal(g)
	dirs := stateDirs(t)
	session := filepath.Dir(filepath.Dir(plantLedger(t, dirs)))
	l := &Ledger{path: filepath.Join(session, "ledger.jsonl")}
	if err := l.Add(Resource{Kind: ResCgroup, Group: raw, Note: "stepbox's parent cgroup"}); err != nil {
		t.Fatal(err)
	}

	rep, err := Sweep(dirs)
	said := sweepSaid(rep, err)
	if err != nil {
		t.Errorf("the sweep failed on a cgroup line under a file: %v", err)
	}
	for _, p := range nowhere {
		if !strings.Contains(said, "dropped cgroup ") || !strings.Contains(said, strconv.Quote(p)) {
			t.Errorf("the sweep does not say it dropped %s:\n%s", p, said)
		}
	}
	if strings.Contains(said, strconv.Quote(there)) {
		t.Errorf("the sweep says it dropped %s, which is there:\n%s", there, said)
	}
	if _, serr := os.Stat(there); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the sweep left %s, a cgroup of the line that is there: %v", there, serr)
	}
	if _, serr := os.Stat(session); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the session's directory %s is kept for a next cleanup that would fail the same way: %v", session, serr)
	}
	if !slices.Contains(rep.Sessions, goneSession) {
		t.Errorf("the sweep does not report session %s removed: %q", goneSession, rep.Sessions)
	}
}

// ut33 F5: the session's own teardown drops a cgroup line under a file
// too: Close undoes the rest, removes the session's directory and says
// the dropped path as a note (TeardownNotes), not a failure.
func TestCloseDropsACgroupLineUnderAFile(t *testing.T) {
	needRoot(t)
	_, place := testPlace(t)
	s, err := OpenSession(stateDirs(t))
	if err != nil {
		t.Fatal(err)
	}
	parent := cgroups.ParentName(s.ID)
	nowhere := filepath.Join(place.Dirs[0].Path, "cgroup.procs", parent)
	raw, _ := json.Marshal(cgroups.Group{Name: parent, Dirs: []cgroups.Dir{{Hierarchy: place.Dirs[0].Hierarchy, Path: nowhere}}})
	l := &Ledger{path: filepath.Join(s.Dir, "ledger.jsonl")}
	if err := l.Add(Resource{Kind: ResCgroup, Group: raw, Note: "stepbox's parent cgroup"}); err != nil {
		s.Close()
		t.Fatal(err)
	}
	err = s.Close()
	var notes TeardownNotes
	if !errors.As(err, &notes) || !strings.Contains(notes.Error(), "dropped cgroup "+strconv.Quote(nowhere)) {
		t.Errorf("Close of a session whose ledger names %s: %v, want a note that it dropped it", nowhere, err)
	}
	if _, serr := os.Stat(s.Dir); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the session's directory %s is kept: %v", s.Dir, serr)
	}
}
