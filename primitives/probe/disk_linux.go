package probe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is a block device of the host: its number and its kernel name
// (the node's name in the host's /dev).
type Device struct {
	Dev  uint64
	Name string
}

func (d Device) String() string {
	return fmt.Sprintf("%d:%d %s", unix.Major(d.Dev), unix.Minor(d.Dev), d.Name)
}

// maxDevices bounds the devices the disk probe tries.
const maxDevices = 64

// HostDevices lists the block devices of /sys/dev/block (one entry
// "MAJOR:MINOR" each, a link to the device's directory, named as in /dev).
func HostDevices(sysDevBlock string) ([]Device, error) {
	ents, err := os.ReadDir(sysDevBlock)
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, e := range ents {
		var major, minor uint32
		if _, err := fmt.Sscanf(e.Name(), "%d:%d", &major, &minor); err != nil {
			continue
		}
		name := e.Name()
		if target, err := os.Readlink(sysDevBlock + "/" + e.Name()); err == nil {
			name = target[strings.LastIndex(target, "/")+1:]
		}
		out = append(out, Device{Dev: unix.Mkdev(major, minor), Name: name})
		if len(out) == maxDevices {
			break
		}
	}
	return out, nil
}

func formatDevices(ds []Device) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%d:%d=%s", unix.Major(d.Dev), unix.Minor(d.Dev), d.Name)
	}
	return strings.Join(parts, ",")
}

func parseDevices(s string) ([]Device, error) {
	if s == "" {
		return nil, nil
	}
	var out []Device
	for _, p := range strings.Split(s, ",") {
		num, name, _ := strings.Cut(p, "=")
		var major, minor uint32
		if _, err := fmt.Sscanf(num, "%d:%d", &major, &minor); err != nil || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("device %q: want MAJOR:MINOR=NAME", p)
		}
		out = append(out, Device{Dev: unix.Mkdev(major, minor), Name: name})
	}
	if len(out) > maxDevices {
		return nil, fmt.Errorf("%d devices, more than %d", len(out), maxDevices)
	}
	return out, nil
}

// kmsg is /dev/kmsg, the host's kernel log as a character device.
var kmsg = Device{Dev: unix.Mkdev(1, 11), Name: "kmsg"}

// probeDisk opens each of the host's block devices read-only and reads
// its first sector, and /dev/kmsg: the devices cgroup decides whether a
// box may open a node at all (Docker's allows no disk, and no kmsg). In
// a box with a root of its own it makes each node there and removes it
// at once (mknod needs CAP_MKNOD); a box still on the host's root opens
// the host's own node in /dev. Nothing is written.
func probeDisk(h Host) Result {
	var opened, names []string
	var refused error
	refusedAt := ""
	allMknod := true
	for i, d := range append(h.Disks, kmsg) {
		mode := uint32(unix.S_IFBLK)
		if i == len(h.Disks) {
			mode = unix.S_IFCHR
		}
		what, err := tryDevice(h, mode, d)
		if err == nil {
			opened, names = append(opened, what), append(names, d.Name)
			continue
		}
		var mk *mknodError
		if !errors.As(err, &mk) {
			allMknod = false
		}
		if refused == nil {
			refused, refusedAt = err, d.String()
		}
	}
	n := len(h.Disks) + 1
	if len(opened) > 0 {
		via := "read"
		if len(opened) == 1 && names[0] == kmsg.Name {
			via = "kmsg"
		}
		return open(via, "the box opened %d of %d host devices (%s): %s", len(opened), n, strings.Join(names, " "), opened[0])
	}
	if refused == nil {
		return closed("nodisk", "the host has no device to try")
	}
	via := "open"
	if allMknod {
		via = "mknod"
	}
	return closed(via, "none of %d host devices (every block device of /sys/dev/block, and /dev/kmsg) opened; %s: %v", n, refusedAt, refused)
}

type mknodError struct{ err error }

func (e *mknodError) Error() string { return e.err.Error() }
func (e *mknodError) Unwrap() error { return e.err }

// tryDevice opens device d read-only and reads from it: a block
// device's first sector, a record of /dev/kmsg. It says what it read.
func tryDevice(h Host, mode uint32, d Device) (string, error) {
	node := "/dev/" + d.Name
	num := fmt.Sprintf("%d:%d", unix.Major(d.Dev), unix.Minor(d.Dev))
	if h.OwnRoot {
		node = "/.stepbox-probe-dev-" + strconv.Itoa(os.Getpid())
		if err := unix.Mknod(node, mode|0o600, int(d.Dev)); err != nil {
			return "", &mknodError{fmt.Errorf("mknod(%s, %s): %w", node, num, err)}
		}
		defer unix.Unlink(node)
	} else {
		var st unix.Stat_t
		if err := unix.Stat(node, &st); err != nil {
			return "", fmt.Errorf("stat(%s): %w", node, err)
		}
		if st.Rdev != d.Dev || st.Mode&unix.S_IFMT != mode {
			return "", fmt.Errorf("%s is not the host's %s", node, num)
		}
	}
	fd, err := unix.Open(node, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open(%s, O_RDONLY): %w", node, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 512)
	if mode == unix.S_IFCHR {
		k, err := unix.Read(fd, buf)
		if err != nil {
			return fmt.Sprintf("/dev/kmsg (%s) opened, read: %v", num, err), nil
		}
		return fmt.Sprintf("/dev/kmsg (%s): the host's kernel log, %.40q", num, buf[:k]), nil
	}
	k, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return fmt.Sprintf("%s (%s) opened, pread: %v", d.Name, num, err), nil
	}
	return fmt.Sprintf("%s (%s) read %d bytes of sector 0", d.Name, num, k), nil
}
