package step

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

type flagName struct {
	bit  uintptr
	name string
}

var cloneFlags = []flagName{
	{unix.CLONE_NEWNS, "CLONE_NEWNS"},
	{unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
	{unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
	{unix.CLONE_NEWNET, "CLONE_NEWNET"},
	{unix.CLONE_NEWPID, "CLONE_NEWPID"},
	{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
	{unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
	{unix.CLONE_NEWUSER, "CLONE_NEWUSER"},
	{unix.CLONE_FS, "CLONE_FS"},
	{unix.CLONE_FILES, "CLONE_FILES"},
}

var mountFlags = []flagName{
	{unix.MS_RDONLY, "MS_RDONLY"},
	{unix.MS_NOSUID, "MS_NOSUID"},
	{unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"},
	{unix.MS_REMOUNT, "MS_REMOUNT"},
	{unix.MS_BIND, "MS_BIND"},
	{unix.MS_MOVE, "MS_MOVE"},
	{unix.MS_REC, "MS_REC"},
	{unix.MS_PRIVATE, "MS_PRIVATE"},
	{unix.MS_SLAVE, "MS_SLAVE"},
	{unix.MS_SHARED, "MS_SHARED"},
	{unix.MS_UNBINDABLE, "MS_UNBINDABLE"},
	{unix.MS_RELATIME, "MS_RELATIME"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME"},
}

var umountFlags = []flagName{
	{unix.MNT_FORCE, "MNT_FORCE"},
	{unix.MNT_DETACH, "MNT_DETACH"},
	{unix.MNT_EXPIRE, "MNT_EXPIRE"},
	{unix.UMOUNT_NOFOLLOW, "UMOUNT_NOFOLLOW"},
}

func decode(v uintptr, names []flagName) string {
	if v == 0 {
		return "0"
	}
	var parts []string
	for _, f := range names {
		if v&f.bit == f.bit {
			parts = append(parts, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	return strings.Join(parts, "|")
}

// CloneFlags decodes CLONE_* flags as strace prints them: CLONE_NEWUTS|CLONE_NEWPID.
func CloneFlags(v uintptr) string { return decode(v, cloneFlags) }

// MountFlags decodes MS_* flags as strace prints them.
func MountFlags(v uintptr) string { return decode(v, mountFlags) }

// UmountFlags decodes umount2 flags as strace prints them.
func UmountFlags(v uintptr) string { return decode(v, umountFlags) }

// Quote formats s as strace prints a string argument.
func Quote(s string) string { return fmt.Sprintf("%q", s) }

// MountCall formats mount(2) the way strace prints it.
func MountCall(source, target, fstype string, flags uintptr, data string) string {
	d := "NULL"
	if data != "" {
		d = Quote(data)
	}
	src := "NULL"
	if source != "" {
		src = Quote(source)
	}
	fs := "NULL"
	if fstype != "" {
		fs = Quote(fstype)
	}
	return fmt.Sprintf("mount(%s, %s, %s, %s, %s)", src, Quote(target), fs, MountFlags(flags), d)
}
