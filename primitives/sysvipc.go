package primitives

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IPCObject is one System V IPC object of an IPC namespace, as the
// kernel lists it in /proc/sysvipc/{msg,sem,shm} for the namespace of
// the reader (sysvipc(7), proc(5)).
type IPCObject struct {
	Kind string // "message queue", "semaphore set", "shared memory segment"
	ID   int
	Key  uint32 // IPC_PRIVATE is 0
	CUID int    // the creator's uid, as the reader's user namespace sees it
}

// ipcFiles are the /proc/sysvipc files, the kind each lists and the
// option of ipcrm(1) that removes one by ID.
var ipcFiles = []struct{ file, kind, rm string }{
	{"msg", "message queue", "-q"},
	{"sem", "semaphore set", "-s"},
	{"shm", "shared memory segment", "-m"},
}

// IPCObjects lists the System V IPC objects of the reader's IPC
// namespace, from procRoot's sysvipc files (/proc on the host).
func IPCObjects(procRoot string) ([]IPCObject, error) {
	var all []IPCObject
	for _, f := range ipcFiles {
		file, err := os.Open(filepath.Join(procRoot, "sysvipc", f.file))
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		objs, err := ParseSysvipc(file, f.kind)
		file.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, objs...)
	}
	return all, nil
}

// ParseSysvipc reads one /proc/sysvipc file: a header naming its columns
// (key, then msqid, semid or shmid, …, cuid, …), then a line per object.
// The key is printed as a signed decimal int.
func ParseSysvipc(r io.Reader, kind string) ([]IPCObject, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, sc.Err()
	}
	header := strings.Fields(sc.Text())
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	cuid, ok := col["cuid"]
	if len(header) < 2 || header[0] != "key" || !ok {
		return nil, fmt.Errorf("sysvipc %s: header %q has no key, id and cuid columns", kind, sc.Text())
	}
	var out []IPCObject
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != len(header) {
			return nil, fmt.Errorf("sysvipc %s: line %q has %d fields, the header %d", kind, sc.Text(), len(f), len(header))
		}
		key, err1 := strconv.ParseInt(f[0], 10, 32)
		id, err2 := strconv.Atoi(f[1])
		uid, err3 := strconv.Atoi(f[cuid])
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				return nil, fmt.Errorf("sysvipc %s: line %q: %w", kind, sc.Text(), err)
			}
		}
		out = append(out, IPCObject{Kind: kind, ID: id, Key: uint32(key), CUID: uid})
	}
	return out, sc.Err()
}

// RemoveCommand is the ipcrm(1) command line that removes o.
func (o IPCObject) RemoveCommand() string {
	for _, f := range ipcFiles {
		if f.kind == o.Kind {
			return fmt.Sprintf("ipcrm %s %d", f.rm, o.ID)
		}
	}
	return ""
}

// NewIPCObjects are the objects of after that before does not hold (by
// kind and ID): those made in between.
func NewIPCObjects(before, after []IPCObject) []IPCObject {
	had := map[string]bool{}
	for _, o := range before {
		had[o.Kind+strconv.Itoa(o.ID)] = true
	}
	var made []IPCObject
	for _, o := range after {
		if !had[o.Kind+strconv.Itoa(o.ID)] {
			made = append(made, o)
		}
	}
	return made
}
