package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
)

// A session's liveness is a lock, not a PID (ut30 F9): the live session
// holds flock(2) LOCK_EX on its session.json for its whole life, and the
// kernel drops it however the session ends (a zombie has closed its
// files). A PID and start time mean nothing in another PID namespace:
// two sessions in containers that share a state dir are both PID 1 and
// would each judge the other a crashed one; a lock is the same fact in
// every namespace.

// newSessionDirPrefix marks a session directory being made: it gets its
// final name only once its session.json is locked, so a sweeper never
// sees a live session's directory without the lock held.
const newSessionDirPrefix = ".new-"

// makeSessionDir makes dir (Dirs.Run/sessions/ID) with its boxes dir and
// a session.json it holds locked, and returns that file: the session
// keeps it open until it ends (it is close-on-exec, so no box or command
// inherits it).
func makeSessionDir(dir string, f sessionFile) (*os.File, error) {
	tmp := filepath.Join(filepath.Dir(dir), newSessionDirPrefix+filepath.Base(dir))
	if err := os.MkdirAll(filepath.Join(tmp, "boxes"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(tmp, "session.json"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("state dir: lock %s: %w", lock.Name(), err)
	}
	b, _ := json.Marshal(f)
	if err := lock.Truncate(0); err == nil {
		_, err = lock.WriteAt(b, 0)
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("state dir: %w", err)
	}
	// rename(2) refuses an existing non-empty directory: another session
	// with the same ID (the same PID and start tick in another PID
	// namespace) is not overwritten.
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		onefs.RemoveAll(tmp)
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return lock, nil
}

// sessionHold is a dead session's lock, held by the sweeper while it
// tears the session down: two sweepers never tear one session down at
// once, and no live session is torn down at all.
type sessionHold struct{ f *os.File }

func (h *sessionHold) release() {
	if h != nil && h.f != nil {
		h.f.Close()
	}
}

// holdDeadSession takes session directory dir's lock if its session is
// dead. alive: its session (in any PID namespace) holds it, or another
// sweeper is tearing it down. A directory without a session.json is dead
// too: makeSessionDir names no directory before its lock is held. The
// session.json it read comes back for what it records.
func holdDeadSession(dir string) (hold *sessionHold, rec sessionFile, alive bool) {
	f, err := os.OpenFile(filepath.Join(dir, "session.json"), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return &sessionHold{}, rec, false
	}
	if err != nil {
		// Unreadable (not a file of stepbox's, a symlink): not judged
		// dead on that; the sweep names the directory.
		return nil, rec, true
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, rec, true
	}
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	json.Unmarshal(b[:n], &rec)
	return &sessionHold{f}, rec, false
}

// sessionDirAlive says whether the session of directory dir holds its
// lock: the test for anyone but a sweeper, who holds what it finds dead.
func sessionDirAlive(dir string) bool {
	h, _, alive := holdDeadSession(dir)
	h.release()
	return alive
}

// sessionLive says whether session id, named by a marker or a cgroup
// found on the host, still runs: its lock in this state dir, or, for a
// session of another state dir and this PID namespace, its PID and start
// time (markers carry the PID namespace; only its own are judged so).
func sessionLive(dirs Dirs, id string) bool {
	dir := filepath.Join(dirs.Run, "sessions", id)
	if _, err := os.Lstat(dir); err == nil && sessionDirAlive(dir) {
		return true
	}
	return sessionAlive(id)
}

// staleNewSessionDir says whether a directory being made (.new-ID) was
// left by a session that died before naming it: its lock is free and it
// is older than any start-up takes.
func staleNewSessionDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Minute {
		return false
	}
	return !sessionDirAlive(dir)
}
