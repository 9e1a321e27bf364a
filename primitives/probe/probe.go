// Package probe tries the known ways out of a container from inside a
// box, and reports each as open or closed (or unknown, where the box put
// a file of its own where the kernel's should be). It runs as `stepbox __probe`,
// spawned by the box's executor with the identity the box's next command
// gets (its namespaces, root, cgroup, credentials). Every probe reads or
// asks for permission; none writes to the host: a hole is shown by a read
// (a host disk's first sector, a host file), by access(2) with W_OK, or by
// a call whose arguments fail after the kernel's permission check
// (finit_module(-1), EBADF). Mounts a probe makes go into a mount
// namespace of its own thread, which dies with the thread.
package probe

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// States of a probe. Unknown: the probe could not tell, as the box put
// something else where the kernel's file should be.
const (
	Open    = "open"
	Closed  = "closed"
	Unknown = "unknown"
)

// Result is one probe's answer: open, closed or unknown, how (Via, one of the
// probe's known ways) and what it saw.
type Result struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Via      string `json:"via"`
	Evidence string `json:"evidence"`
}

// Report is what `stepbox __probe` prints on stdout.
type Report struct {
	Probes []Result `json:"probes"`
}

// Host is what the session knows of the host and passes on the command
// line: the probe cannot see the host, and must tell its files from the
// box's.
type Host struct {
	File       string // a host file, /etc/hostname
	FileDev    uint64 // its st_dev and st_ino
	FileIno    uint64
	Disks      []Device // the host's block devices (/sys/dev/block)
	OwnRoot    bool     // the box has a root of its own (pivot_root, chroot)
	HandleType int32    // name_to_handle_at(2) of File
	Handle     []byte
	PIDNS      uint64 // inode of the host's PID namespace
	CgroupNS   uint64 // inode of the host's cgroup namespace
	// Cgroup2Opts are the options of the host's cgroup2 hierarchy, to
	// mount it with (cgroups.V2MountOptions): named again, they change
	// nothing; left out, a mount from the host's cgroup namespace would
	// turn them off for the whole machine.
	Cgroup2Opts string
	// Hold says to read stdin to its end before probing: the session's
	// pipe, which it closes once it has looked at the probe (Main). Run
	// by hand, from a box's shell, the probe does not wait.
	Hold bool
}

// Args is the command line of `stepbox __probe` for names, after the
// entry point's own name.
func (h Host) Args(names []string) []string {
	return append([]string{
		"-file", h.File,
		"-file-id", fmt.Sprintf("%d:%d", h.FileDev, h.FileIno),
		"-disks", formatDevices(h.Disks),
		"-own-root=" + strconv.FormatBool(h.OwnRoot),
		"-handle", fmt.Sprintf("%d:%x", h.HandleType, h.Handle),
		"-pidns", strconv.FormatUint(h.PIDNS, 10),
		"-cgroupns", strconv.FormatUint(h.CgroupNS, 10),
		"-cgroup2-opts", h.Cgroup2Opts,
		"-hold=" + strconv.FormatBool(h.Hold),
		"--",
	}, names...)
}

func parseArgs(args []string) (Host, []string, error) {
	var h Host
	var fileID, handle, disks string
	fs := flag.NewFlagSet("__probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&h.File, "file", "", "")
	fs.StringVar(&fileID, "file-id", "0:0", "")
	fs.StringVar(&disks, "disks", "", "")
	fs.BoolVar(&h.OwnRoot, "own-root", false, "")
	fs.StringVar(&handle, "handle", "0:", "")
	fs.Uint64Var(&h.PIDNS, "pidns", 0, "")
	fs.Uint64Var(&h.CgroupNS, "cgroupns", 0, "")
	fs.StringVar(&h.Cgroup2Opts, "cgroup2-opts", "", "")
	fs.BoolVar(&h.Hold, "hold", false, "")
	err := fs.Parse(args)
	if err != nil {
		return h, nil, err
	}
	if _, err := fmt.Sscanf(fileID, "%d:%d", &h.FileDev, &h.FileIno); err != nil {
		return h, nil, fmt.Errorf("-file-id %q: %w", fileID, err)
	}
	if h.Disks, err = parseDevices(disks); err != nil {
		return h, nil, fmt.Errorf("-disks %q: %w", disks, err)
	}
	typ, hexed, ok := strings.Cut(handle, ":")
	t, perr := strconv.ParseInt(typ, 10, 32)
	if !ok || perr != nil {
		return h, nil, fmt.Errorf("-handle %q: want TYPE:HEX", handle)
	}
	h.HandleType = int32(t)
	if _, err := fmt.Sscanf(hexed, "%x", &h.Handle); err != nil && hexed != "" {
		return h, nil, fmt.Errorf("-handle %q: %w", handle, err)
	}
	return h, fs.Args(), nil
}

// Running starts the line `stepbox __probe` writes on stderr as each
// probe starts.
const Running = "running probe "

// A probe tries one way out.
type probe struct {
	name string
	run  func(Host) Result
}

// probes, in the order `probe` runs them.
var probes = []probe{
	{"disk", probeDisk},
	{"proc_root", probeProcRoot},
	{"release_agent", probeReleaseAgent},
	{"open_by_handle_at", probeOpenByHandle},
	{"proc_sys", probeProcSys},
	{"sys", probeSys},
	{"remount", probeRemount},
	{"finit_module", probeFinitModule},
	{"dmesg", probeDmesg},
	{"kallsyms", probeKallsyms},
	{"ptrace", probePtrace},
	{"cgroup_escape", probeCgroupEscape},
	{"tiocsti", probeTIOCSTI},
}

// Names lists the known probes, in the order they run.
func Names() []string {
	names := make([]string, len(probes))
	for i, p := range probes {
		names[i] = p.name
	}
	return names
}

// Known reports whether name is a probe.
func Known(name string) bool {
	for _, p := range probes {
		if p.name == name {
			return true
		}
	}
	return false
}

// Main is `stepbox __probe [FLAGS] -- NAME…`: it runs the named probes
// (all without names) and prints the report as JSON. It returns the exit
// code.
//
// With -hold, stdin is the session's: the probe reads it to its end before
// it probes, and the session closes it once it has read the probe's
// TracerPid (primitives/box_probe_trace.go). A probe that ran and ended
// before the session's first look had its report refused as one it
// could not see untraced, which a busy machine made likely.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The probes read /proc/self (the thread group leader): keep this
	// goroutine on the leader, so that no probe's thread of its own, whose
	// mount namespace it unshares (privately), is ever the leader.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, names, err := parseArgs(args)
	if err == nil {
		for _, n := range names {
			if !Known(n) {
				err = errors.Join(err, fmt.Errorf("unknown probe %q", n))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "stepbox __probe: %v\n", err)
		return 2
	}
	// The probes read these through procfs's parsers, which open them
	// as they are: a FIFO the box put there would hang them.
	for _, p := range []string{"/proc/self/mountinfo", "/proc/self/cgroup"} {
		f, err := openChecked(p, unix.O_RDONLY, procFile)
		if err != nil {
			fmt.Fprintf(stderr, "stepbox __probe: %v\n", err)
			return 2
		}
		f.Close()
	}
	if h.Hold {
		io.Copy(io.Discard, stdin)
	}
	var rep Report
	for _, p := range probes {
		if len(names) > 0 && !slices.Contains(names, p.name) {
			continue
		}
		// The session names the probe that was running when it ends a
		// probe that takes too long.
		fmt.Fprintf(stderr, "%s%s\n", Running, p.name)
		r := p.run(h)
		r.Name = p.name
		rep.Probes = append(rep.Probes, r)
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		fmt.Fprintf(stderr, "stepbox __probe: %v\n", err)
		return 1
	}
	return 0
}

func open(via, format string, a ...any) Result {
	return Result{State: Open, Via: via, Evidence: fmt.Sprintf(format, a...)}
}

func closed(via, format string, a ...any) Result {
	return Result{State: Closed, Via: via, Evidence: fmt.Sprintf(format, a...)}
}

func unknown(via, format string, a ...any) Result {
	return Result{State: Unknown, Via: via, Evidence: fmt.Sprintf(format, a...)}
}
