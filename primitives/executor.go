package primitives

/*
#cgo CFLAGS: -Wall -Werror -O2
#include "executor.h"
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// The session drives each box's executor (executor.c) over a
// SOCK_SEQPACKET socketpair: one op per packet, in the layout of
// executor.h, file descriptors beside it as SCM_RIGHTS. Go decides every
// op and its arguments; the executor performs it and answers with the
// result and errno.

type xop uint32

const (
	opHello       xop = C.XOP_HELLO
	opUnshare     xop = C.XOP_UNSHARE
	opSethostname xop = C.XOP_SETHOSTNAME
	opMount       xop = C.XOP_MOUNT
	opUmount2     xop = C.XOP_UMOUNT2
	opPivotRoot   xop = C.XOP_PIVOT_ROOT
	opChdir       xop = C.XOP_CHDIR
	opFchdir      xop = C.XOP_FCHDIR
	opChroot      xop = C.XOP_CHROOT
	opMkdir       xop = C.XOP_MKDIR
	opChmod       xop = C.XOP_CHMOD
	opMknod       xop = C.XOP_MKNOD
	opSymlink     xop = C.XOP_SYMLINK
	opUnlinkat    xop = C.XOP_UNLINKAT
	opOpen        xop = C.XOP_OPEN
	opClose       xop = C.XOP_CLOSE
	opWriteFile   xop = C.XOP_WRITE_FILE
	opReadFile    xop = C.XOP_READ_FILE
	opSetns       xop = C.XOP_SETNS
	opForkInit    xop = C.XOP_FORK_INIT
	opSpawn       xop = C.XOP_SPAWN
	opFsopen      xop = C.XOP_FSOPEN
	opFsconfig    xop = C.XOP_FSCONFIG
	opFsmount     xop = C.XOP_FSMOUNT
	opMoveMount   xop = C.XOP_MOVE_MOUNT
	opReadFD      xop = C.XOP_READ_FD
	opPrctl       xop = C.XOP_PRCTL
	opIfup        xop = C.XOP_IFUP
	opStat        xop = C.XOP_STAT
	opUname       xop = C.XOP_UNAME
	opSetresuid   xop = C.XOP_SETRESUID
	opSetresgid   xop = C.XOP_SETRESGID
	opSetgroups   xop = C.XOP_SETGROUPS
)

// mount_setattr(2), for read-only volumes and masks (mask_linux.go).
const opMountSetattr xop = C.XOP_MOUNT_SETATTR

// open_tree(2), for the host's devices a rootless /dev binds after
// pivot_root (rootfs.KeepHostDevices).
const opOpenTree xop = C.XOP_OPEN_TREE

const (
	enterRoot      = C.XENTER_ROOT
	enterNoGroups  = C.XENTER_NOGROUPS
	enterSetgroups = C.XENTER_SETGROUPS
	enterSetresgid = C.XENTER_SETRESGID
	enterSetresuid = C.XENTER_SETRESUID
	enterFork      = C.XENTER_FORK
	enterExecve    = C.XENTER_EXECVE
	enterSetsid    = C.XENTER_SETSID
	enterTIOCSCTTY = C.XENTER_TIOCSCTTY
	enterCtty      = C.XENTER_CTTY
	enterWaited    = C.XENTER_WAITED
	enterPassed    = C.XENTER_PASSED
	spawnCtty      = C.XSPAWN_CTTY
	spawnSetsid    = C.XSPAWN_SETSID
	spawnSetID     = C.XSPAWN_SETID
	spawnExecFD    = C.XSPAWN_EXECFD
	spawnSecurity  = C.XSPAWN_SECURITY
	replyResult    = C.XREP_RESULT
	replyExited    = C.XREP_EXITED
	maxMessage     = C.XMAX_MSG
	maxData        = C.XMAX_DATA
	xnums          = C.XNUMS
	enterIDs       = C.XENTER_IDS
	// The image's User in the entered command, as spawnStepSet* in exec's.
	enterIDsSetgroups = C.XENTER_IDS_SETGROUPS
	enterIDsSetresgid = C.XENTER_IDS_SETRESGID
	enterIDsSetresuid = C.XENTER_IDS_SETRESUID
	// The command's environment, which the enter process reads from a
	// descriptor instead of starting with it.
	enterEnv     = C.XENTER_ENV
	enterEnviron = C.XENTER_ENVIRON
	// The command's chdir to the image's WorkingDir.
	enterChdir = C.XENTER_CHDIR
	// The box's root, which the command takes after setns(CLONE_NEWNS).
	enterBoxRoot = C.XENTER_BOXROOT
	enterFchdir  = C.XENTER_FCHDIR
	enterChroot  = C.XENTER_CHROOT
	enterMaxEnv  = C.XENTER_MAX_ENV
	maxArgs      = C.XMAX_ARGS
)

// opNames name the ops in errors, by the syscall each one makes.
var opNames = map[xop]string{
	opHello: "hello", opUnshare: "unshare", opSethostname: "sethostname", opMount: "mount",
	opUmount2: "umount2", opPivotRoot: "pivot_root", opChdir: "chdir", opFchdir: "fchdir",
	opChroot: "chroot", opMkdir: "mkdir", opChmod: "chmod", opMknod: "mknod", opSymlink: "symlink",
	opUnlinkat: "unlinkat", opOpen: "open", opClose: "close", opWriteFile: "write",
	opReadFile: "read", opSetns: "setns", opForkInit: "fork (PID 1)", opSpawn: "spawn",
	opFsopen: "fsopen", opFsconfig: "fsconfig", opFsmount: "fsmount", opMoveMount: "move_mount",
	opReadFD: "read", opPrctl: "prctl", opIfup: "ioctl(SIOCSIFFLAGS)", opStat: "stat",
	opUname: "uname", opSetresuid: "setresuid", opSetresgid: "setresgid", opSetgroups: "setgroups",
}

func (op xop) String() string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("op %d", uint32(op))
}

// replyTimeout bounds every wait for an executor's answer to an op (and
// for a spawned command's exit once it has been cancelled). An op is one
// syscall: a live executor answers in far less; one that has not in this
// long is stopped, stuck or hostile, and the box takes no more steps.
var replyTimeout = 30 * time.Second

// xreq and xrep mirror executor.h; their sizes are checked against C's.
type xreq struct {
	Op   uint32
	Nstr uint32
	Num  [xnums]int64
}

type xrep struct {
	Kind int32
	Err  int32
	Val  int64
	Val2 int64
	Step uint32
	Len  uint32
}

// xsec and xrlimit mirror executor.h: the settings blob (security_wire.go).
type xsec struct {
	Cap     [C.XCAP_SETS]uint64
	Flags   uint32
	LastCap uint32
	NRlimit uint32
	NFilter uint32
}

type xrlimit struct {
	Resource uint32
	Pad      uint32
	Cur, Max uint64
}

var _ = [1]struct{}{}[unsafe.Sizeof(xreq{})-C.sizeof_struct_xreq]
var _ = [1]struct{}{}[unsafe.Sizeof(xsec{})-C.sizeof_struct_xsec]
var _ = [1]struct{}{}[unsafe.Sizeof(xrlimit{})-C.sizeof_struct_xrlimit]
var _ = [1]struct{}{}[unsafe.Sizeof(xrep{})-C.sizeof_struct_xrep]

// reply is one answer from the executor.
type reply struct {
	xrep
	data  []byte
	files []*os.File
}

// errno is the reply's error, nil on success.
func (r reply) errno() error {
	if r.Err == 0 {
		return nil
	}
	return unix.Errno(r.Err)
}

// conn is the session's end of one executor's socketpair.
type conn struct {
	c    *net.UnixConn
	rbuf []byte
	wbuf bytes.Buffer
	// cutAt, once set (Unix nanoseconds), bounds every wait on the socket:
	// the learner's Ctrl-C (executor_interrupt.go).
	cutAt atomic.Int64
	// stopped, once set, is why a watch cut the wait: the executor was
	// seen stopped (executor_stopped.go).
	stopped stoppedState
}

// socketpair returns two connected SOCK_SEQPACKET sockets, both close-on-exec.
func socketpair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC): %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "stepbox-sock"), os.NewFile(uintptr(fds[1]), "stepbox-sock"), nil
}

func newConn(f *os.File) (*conn, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socket: not a unix socket")
	}
	return &conn{c: uc}, nil
}

// send writes one op. A string may not hold a NUL: the kernel would cut it there.
func (c *conn) send(op xop, nums []int64, strs []string, files ...*os.File) error {
	q := xreq{Op: uint32(op), Nstr: uint32(len(strs))}
	copy(q.Num[:], nums)
	c.wbuf.Reset()
	binary.Write(&c.wbuf, binary.NativeEndian, q)
	for _, s := range strs {
		if i := bytes.IndexByte([]byte(s), 0); i >= 0 {
			return fmt.Errorf("%q holds a NUL byte, which no path or name may", s)
		}
		binary.Write(&c.wbuf, binary.NativeEndian, uint32(len(s)+1))
		c.wbuf.WriteString(s)
		c.wbuf.WriteByte(0)
	}
	if c.wbuf.Len() > maxMessage {
		return fmt.Errorf("the request takes %d bytes, more than the executor's %d", c.wbuf.Len(), maxMessage)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	// A stopped executor stops reading: a full socket must not block the
	// session for ever either.
	c.bound(c.c.SetWriteDeadline, time.Now().Add(replyTimeout))
	_, _, err := c.c.WriteMsgUnix(c.wbuf.Bytes(), oob, nil)
	return err
}

// recv reads one reply within replyTimeout. EOF (errEOF) means the
// executor has exited; os.ErrDeadlineExceeded that it did not answer.
func (c *conn) recv() (reply, error) {
	return c.recvUntil(time.Now().Add(replyTimeout))
}

// recvUntil reads one reply before deadline (none: the zero time).
func (c *conn) recvUntil(deadline time.Time) (reply, error) {
	c.bound(c.c.SetReadDeadline, deadline)
	return c.read()
}

// read reads one reply before the deadline set last on the socket.
func (c *conn) read() (reply, error) {
	if c.rbuf == nil {
		c.rbuf = make([]byte, int(unsafe.Sizeof(xrep{}))+maxData)
	}
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.c.ReadMsgUnix(c.rbuf, oob)
	if err != nil {
		return reply{}, err
	}
	if n == 0 {
		return reply{}, errEOF
	}
	var r reply
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return reply{}, fmt.Errorf("parse SCM_RIGHTS: %w", err)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				return reply{}, fmt.Errorf("parse SCM_RIGHTS: %w", err)
			}
			for _, fd := range fds {
				unix.CloseOnExec(fd)
				r.files = append(r.files, os.NewFile(uintptr(fd), "passed-fd"))
			}
		}
	}
	head := int(unsafe.Sizeof(xrep{}))
	if n < head {
		closeAll(r.files)
		return reply{}, fmt.Errorf("the executor's reply is %d bytes, shorter than its %d-byte header", n, head)
	}
	binary.Read(bytes.NewReader(c.rbuf[:head]), binary.NativeEndian, &r.xrep)
	if int(r.Len) != n-head {
		closeAll(r.files)
		return reply{}, fmt.Errorf("the executor's reply says %d data bytes and carries %d", r.Len, n-head)
	}
	r.data = append([]byte(nil), c.rbuf[head:n]...)
	return r, nil
}

func (c *conn) close() error { return c.c.Close() }

var errEOF = errors.New("the box process closed its socket")

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// executor is one box process or PID 1 as the steps see it: every
// method is one op, one syscall in the box. It implements rootfs.Kernel.
type executor struct {
	b   *Box
	c   *conn
	pid int // host PID, for /proc/PID/root and the like
}

// do sends one op and waits for its answer; a dead executor is reported
// as the box's death.
func (x *executor) do(op xop, nums []int64, strs []string, files ...*os.File) (reply, error) {
	if x.b.session.closing.Load() {
		return reply{}, errClosing
	}
	defer x.watchStopped()()
	if err := x.c.send(op, nums, strs, files...); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return reply{}, x.silent(op.String(), err)
		}
		if errors.Is(err, unix.EMSGSIZE) {
			// Nothing was sent: the box is as it was.
			return reply{}, fmt.Errorf("box %s: %s: the request takes %d bytes, more than the socket to the executor carries in one message: %w", x.b.Name, op, x.c.wbuf.Len(), err)
		}
		var errno unix.Errno
		if errors.As(err, &errno) {
			return reply{}, x.b.died(err)
		}
		return reply{}, err
	}
	r, err := x.c.recv()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return reply{}, x.silent(op.String(), err)
	}
	if err != nil {
		return reply{}, x.b.died(err)
	}
	x.c.answered()
	if r.Kind != replyResult {
		closeAll(r.files)
		return reply{}, fmt.Errorf("box %s: the executor answered %s with a reply of kind %d", x.b.Name, op, r.Kind)
	}
	if r.Err == int32(unix.EBADMSG) && r.Val == -1 && op != opReadFile {
		closeAll(r.files)
		return r, fmt.Errorf("box %s: the executor could not parse %s: %w", x.b.Name, op, unix.EBADMSG)
	}
	return r, nil
}

// silent gives up on an executor that did not take or answer op in
// time. Its answer may still come, and would be read as the answer to
// the next op: the box takes no more steps (b.dead), and its socket is
// closed so that nothing waits on it again. The close is also what
// cancels op: an executor that reads it later, once a freeze or stop
// lifts, finds the socket hung up and runs nothing (executor.c,
// session_gone), so a command said not to have run never does (ut29
// F15). Teardown still ends it.
func (x *executor) silent(op string, cause error) error {
	if x.b.dead == nil {
		e := &BoxSilentError{Box: x.b.Name, Who: x.role(), PID: x.pid, Op: op, After: replyTimeout, Cause: cause}
		if seen := x.c.stopped.Load(); seen != nil {
			e = x.stoppedError(op, seen)
			e.Cause = cause
		} else if x.c.cutAt.Load() != 0 {
			e.After, e.Interrupted = interruptGrace, true
		}
		x.b.dead = e
	}
	x.c.close()
	return x.b.dead
}

// role names the executor as the learner knows it.
func (x *executor) role() string {
	if x == x.b.init {
		return "PID 1"
	}
	return "box process"
}

// BoxSilentError says that a box's executor did not answer an op in time.
type BoxSilentError struct {
	Box, Who, Op string
	PID          int
	After        time.Duration
	Interrupted  bool   // the learner's Ctrl-C cut the wait to After
	Stopped      string // how it was seen stopped, when it was
	StoppedBy    string // who could have stopped it, when that is known
	Frozen       string // what says a cgroup freezer holds it, when one does
	FrozenWho    string // the process it holds: the executor or the command
	Cause        error
}

func (e *BoxSilentError) Error() string {
	if e.Frozen != "" {
		return e.frozenMsg()
	}
	if e.Stopped != "" {
		return e.stoppedMsg()
	}
	after := e.After.String()
	if e.Interrupted {
		after += " of Ctrl-C"
	}
	return fmt.Sprintf("box %s: its %s (host PID %d) did not answer %s within %s: it is stopped, stuck or not stepbox's executor any more; the box takes no more steps, `rm %s` tears it down",
		e.Box, e.Who, e.PID, e.Op, after, e.Box)
}

func (e *BoxSilentError) Unwrap() error { return e.Cause }

// call is do for an op whose answer is a number or an errno.
func (x *executor) call(op xop, nums []int64, strs ...string) (int, error) {
	r, err := x.do(op, nums, strs)
	closeAll(r.files)
	if err != nil {
		return -1, err
	}
	return int(r.Val), r.errno()
}

func (x *executor) callErr(op xop, nums []int64, strs ...string) error {
	_, err := x.call(op, nums, strs...)
	return err
}

func (x *executor) Mount(source, target, fstype string, flags uintptr, data string) error {
	return x.callErr(opMount, []int64{int64(flags)}, source, target, fstype, data)
}
func (x *executor) Unmount(target string, flags int) error {
	return x.callErr(opUmount2, []int64{int64(flags)}, target)
}
func (x *executor) Mkdir(path string, mode uint32) error {
	return x.callErr(opMkdir, []int64{int64(mode)}, path)
}
func (x *executor) Chmod(path string, mode uint32) error {
	return x.callErr(opChmod, []int64{int64(mode)}, path)
}
func (x *executor) Mknod(path string, mode uint32, dev int) error {
	return x.callErr(opMknod, []int64{int64(mode), int64(dev)}, path)
}
func (x *executor) Symlink(target, link string) error {
	return x.callErr(opSymlink, nil, target, link)
}
func (x *executor) Unlinkat(dirfd int, path string, flags int) error {
	return x.callErr(opUnlinkat, []int64{int64(dirfd), int64(flags)}, path)
}
func (x *executor) Chdir(path string) error  { return x.callErr(opChdir, nil, path) }
func (x *executor) Fchdir(fd int) error      { return x.callErr(opFchdir, []int64{int64(fd)}) }
func (x *executor) Chroot(path string) error { return x.callErr(opChroot, nil, path) }
func (x *executor) PivotRoot(newRoot, putOld string) error {
	return x.callErr(opPivotRoot, nil, newRoot, putOld)
}
func (x *executor) Open(path string, flags int, mode uint32) (int, error) {
	return x.call(opOpen, []int64{int64(flags), int64(mode)}, path)
}
func (x *executor) Close(fd int) error { return x.callErr(opClose, []int64{int64(fd)}) }
func (x *executor) Fsopen(fsname string, flags int) (int, error) {
	return x.call(opFsopen, []int64{int64(flags)}, fsname)
}
func (x *executor) FsconfigSetString(fd int, key, value string) error {
	return x.callErr(opFsconfig, []int64{int64(fd), unix.FSCONFIG_SET_STRING, 0}, key, value)
}
func (x *executor) FsconfigSetFlag(fd int, key string) error {
	return x.callErr(opFsconfig, []int64{int64(fd), unix.FSCONFIG_SET_FLAG, 0}, key, "")
}
func (x *executor) FsconfigCreate(fd int) error {
	return x.callErr(opFsconfig, []int64{int64(fd), unix.FSCONFIG_CMD_CREATE, 0}, "", "")
}
func (x *executor) Fsmount(fd, flags, attr int) (int, error) {
	return x.call(opFsmount, []int64{int64(fd), int64(flags), int64(attr)})
}
func (x *executor) MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error {
	return x.callErr(opMoveMount, []int64{int64(fromDirfd), int64(toDirfd), int64(flags)}, fromPath, toPath)
}
func (x *executor) OpenTree(dirfd int, path string, flags uint) (int, error) {
	return x.call(opOpenTree, []int64{int64(dirfd), int64(flags)}, path)
}
func (x *executor) MountSetattr(dirfd int, path string, flags uint, attr *unix.MountAttr) error {
	return x.callErr(opMountSetattr, []int64{int64(dirfd), int64(flags), int64(attr.Attr_set), int64(attr.Attr_clr)}, path)
}
func (x *executor) Read(fd int, buf []byte) (int, error) {
	r, err := x.do(opReadFD, []int64{int64(fd)}, nil)
	closeAll(r.files)
	if err != nil {
		return -1, err
	}
	if err := r.errno(); err != nil {
		return -1, err
	}
	return copy(buf, r.data), nil
}

// Path reaches the box's path p from the session: through the executor's
// root, or its working directory for a relative p (proc(5), /proc/PID/root).
func (x *executor) Path(p string) string {
	if len(p) > 0 && p[0] == '/' {
		return x.Proc() + "/root" + p
	}
	return x.Proc() + "/cwd/" + p
}

func (x *executor) Proc() string { return "/proc/" + strconv.Itoa(x.pid) }

// Sethostname is sethostname(2) in the box.
func (x *executor) Sethostname(name string) error { return x.callErr(opSethostname, nil, name) }

// Unshare is unshare(2) in the box.
func (x *executor) Unshare(flags uintptr) error {
	return x.callErr(opUnshare, []int64{int64(flags)})
}

// Setns is setns(2) in the box, into the namespace f is open on.
func (x *executor) Setns(f *os.File, nstype int) error {
	r, err := x.do(opSetns, []int64{int64(nstype)}, nil, f)
	closeAll(r.files)
	if err != nil {
		return err
	}
	return r.errno()
}

// WriteFile is open, one write(2) and close in the box: proc(5) files
// such as timens_offsets take their value in one write.
func (x *executor) WriteFile(path, data string) error {
	return x.callErr(opWriteFile, nil, path, data)
}

// ReadFile reads a file as the box sees it (at most maxData bytes).
func (x *executor) ReadFile(path string) ([]byte, error) {
	r, err := x.do(opReadFile, nil, []string{path})
	closeAll(r.files)
	if err != nil {
		return nil, err
	}
	return r.data, r.errno()
}

// LinkUp brings a network interface up in the box's network namespace.
func (x *executor) LinkUp(name string) error {
	r, err := x.do(opIfup, nil, []string{name})
	closeAll(r.files)
	if err != nil {
		return err
	}
	return r.errno()
}

// Prctl is prctl(2) with one argument in the box.
func (x *executor) Prctl(option, arg int) error {
	return x.callErr(opPrctl, []int64{int64(option), int64(arg)})
}

// Setresuid sets the real, effective and saved uid in the box.
func (x *executor) Setresuid(uid int) error { return x.callErr(opSetresuid, []int64{int64(uid)}) }

// Setresgid sets the real, effective and saved gid in the box.
func (x *executor) Setresgid(gid int) error { return x.callErr(opSetresgid, []int64{int64(gid)}) }

// Setgroups drops the supplementary groups in the box.
func (x *executor) Setgroups() error { return x.callErr(opSetgroups, nil) }

// Nodename is uname(2)'s nodename in the box's UTS namespace.
func (x *executor) Nodename() (string, error) {
	r, err := x.do(opUname, nil, nil)
	closeAll(r.files)
	if err != nil {
		return "", err
	}
	return string(r.data), r.errno()
}

// hello asks the executor who it is: its PID as it sees itself.
func (x *executor) hello() (int, error) {
	return x.call(opHello, nil)
}

// cgroupView reads /proc/self/cgroup in the box, as its own cgroup
// namespace renders it: after `unshare cgroup` the paths start at the
// box's own cgroup (cgroup_namespaces(7)); the session cannot read that
// view from outside. /proc/self, not /proc/<getpid()>: the proc mount
// resolves it in its own PID namespace.
func (x *executor) cgroupView() ([]procfs.Cgroup, error) {
	raw, err := x.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var out []procfs.Cgroup
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		// hierarchy-ID:controller-list:cgroup-path (cgroups(7))
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("/proc/self/cgroup in the box: bad line %q", line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("/proc/self/cgroup in the box: bad hierarchy ID in %q", line)
		}
		cg := procfs.Cgroup{HierarchyID: id, Path: f[2]}
		if f[1] != "" {
			cg.Controllers = strings.Split(f[1], ",")
		}
		out = append(out, cg)
	}
	return out, nil
}
