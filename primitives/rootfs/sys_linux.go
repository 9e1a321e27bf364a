package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// threadMounts reads the mount table of the box's process (k.Proc).
func threadMounts(k Kernel) ([]*procfs.MountInfo, error) {
	pid, err := strconv.Atoi(filepath.Base(k.Proc()))
	if err != nil {
		return nil, fmt.Errorf("read mount table: %s: %w", k.Proc(), err)
	}
	mounts, err := procfs.GetProcMounts(pid)
	if err != nil {
		return nil, fmt.Errorf("read %s/mountinfo: %w", k.Proc(), err)
	}
	return mounts, nil
}

// mountAt returns the topmost mount on point, or nil.
func mountAt(mounts []*procfs.MountInfo, point string) *procfs.MountInfo {
	var top *procfs.MountInfo
	for _, m := range mounts {
		if m.MountPoint == point {
			top = m
		}
	}
	return top
}

// mkdirs creates p and its missing parents with mode, recording each
// mkdir(2), and returns what it created, outermost first. mode is set
// with chmod(2) as well when the umask would cut it.
func mkdirs(k Kernel, st *step.Step, p string, mode os.FileMode) ([]string, error) {
	var missing []string
	for q := filepath.Clean(p); ; q = filepath.Dir(q) {
		// Resolved inside the box's root: an image's symlink on the way
		// is followed as the box will follow it, never on the host.
		if _, err := inroot.Lstat(k.Path("/"), q); err == nil || madeByPlan(k, q) {
			break
		} else if !errors.Is(err, os.ErrNotExist) || q == "/" {
			return nil, fmt.Errorf("lstat %s: %w", q, err)
		}
		missing = append([]string{q}, missing...)
	}
	for i, q := range missing {
		m := os.FileMode(0o755)
		if i == len(missing)-1 {
			m = mode
		}
		if err := st.Do(fmt.Sprintf("mkdir(%s, %#o)", step.Quote(q), uint32(m)), func() error { return k.Mkdir(q, uint32(m)) }); err != nil {
			removeAll(k, missing[:i])
			return nil, err
		}
		if err := chmodIfCut(k, st, q, m); err != nil {
			removeAll(k, missing[:i+1])
			return nil, err
		}
	}
	return missing, nil
}

// chmodIfCut sets mode on p when the umask took bits away at creation
// (as `mkdir -m` and `mknod -m` do).
func chmodIfCut(k Kernel, st *step.Step, p string, mode os.FileMode) error {
	if mode&^umask() == mode {
		return nil
	}
	return st.Do(fmt.Sprintf("chmod(%s, %#o)", step.Quote(p), uint32(mode)), func() error { return k.Chmod(p, uint32(mode)) })
}

// removeAll removes the directories created by mkdirs, innermost first.
// It runs only to roll back a failed step, whose error is what counts.
func removeAll(k Kernel, created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		_ = os.RemoveAll(k.Path(created[i]))
	}
}

// recordFD records a syscall that returns a file descriptor.
func recordFD(st *step.Step, call string, fd int, err error) error {
	res := strconv.Itoa(fd)
	if err != nil {
		res = step.Result(err)
	}
	st.Calls = append(st.Calls, step.Call{Syscall: call, Result: res})
	if err != nil {
		return &step.SyscallError{Call: call, Err: err}
	}
	return nil
}

// mountCall runs and records mount(2).
func mountCall(k Kernel, st *step.Step, source, target, fstype string, flags uintptr, data string) error {
	return st.Do(step.MountCall(source, target, fstype, flags, data), func() error {
		return k.Mount(source, target, fstype, flags, data)
	})
}

// umountCall runs and records umount2(2).
func umountCall(k Kernel, st *step.Step, target string, flags int) error {
	return st.Do(fmt.Sprintf("umount2(%s, %s)", step.Quote(target), step.UmountFlags(uintptr(flags))), func() error {
		return k.Unmount(target, flags)
	})
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
