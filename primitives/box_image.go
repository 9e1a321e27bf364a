package primitives

import (
	"fmt"
	"strings"
)

// ProcessDefaults is what an image's config says about the commands a
// box runs (image-spec config.md: Env, WorkingDir, User, Entrypoint,
// Cmd), once its overlay stacks the image.
type ProcessDefaults struct {
	Image string
	Env   []string
	Dir   string   // applies once the overlay is the box's / (pivot_root or chroot)
	User  string   // as the image says it: "1000", "1000:1000", "nobody"
	IDs   *IDs     // User resolved against the image's /etc/passwd; nil: root
	Argv  []string // Entrypoint + Cmd: what `exec` with no arguments runs
}

// IDs is a uid and gid.
type IDs struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// SetProcessDefaults makes p apply to every command the box starts
// from now on.
func (b *Box) SetProcessDefaults(p ProcessDefaults) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.process = p
}

// CommandIDs is the uid and gid exec, sh and enter run commands as now:
// the image's User once the overlay is the box's root; nil: root.
func (b *Box) CommandIDs() *IDs {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.execArgs(nil, nil).User
}

// ProcessDefaults returns what SetProcessDefaults set.
func (b *Box) ProcessDefaults() ProcessDefaults {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.process
}

// mergeEnv keeps the last value of each variable, in the order of first
// appearance: execve(2) passes duplicates on, and libc's getenv takes
// the first.
func mergeEnv(env []string) []string {
	last := map[string]string{}
	var order []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := last[k]; !ok {
			order = append(order, k)
		}
		last[k] = kv
	}
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = last[k]
	}
	return out
}

// CheckCommandIDs refuses ids (an image's User, resolved) for the
// commands of a box without a user namespace of its own when either lies
// in the area stepbox cuts ID blocks from (idblock.go): there a uid is
// the host uid of another box's root or user, and a command run as it
// could signal that box's processes and own its files, though no two live
// boxes may share a block. In a box with a user namespace the ids are
// mapped through its own block. cmd names the command for the message.
func (b *Box) CheckCommandIDs(cmd string, ids *IDs) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checkCommandIDs(cmd, ids)
}

// checkCommandIDs is CheckCommandIDs with b.mu held.
func (b *Box) checkCommandIDs(cmd string, ids *IDs) error {
	if ids == nil || b.User || b.unshared["user"] {
		return nil
	}
	a, err := rootIDArea()
	if err != nil {
		return fmt.Errorf("%s: the image's User: reading the area of ID blocks: %w", cmd, err)
	}
	for _, c := range []struct {
		what string
		id   uint32
		r    IDRange
	}{{"uid", ids.UID, a.uid}, {"gid", ids.GID, a.gid}} {
		if int64(c.id) >= int64(c.r.Outside) && int64(c.id) < int64(c.r.Outside)+int64(c.r.Count) {
			return fmt.Errorf("%s: the image's User is %s %d, which lies in %d-%d, the area stepbox hands out as ID blocks (%s): "+
				"there it is the host %s of another box's root or user, and box %s has no user namespace of its own, so its command would run as that %s on the host and could signal the other box's processes. "+
				"Run the image in a box made with `new NAME --user`, or `unshare user` before `mount overlay`: there the %s is the box's own",
				cmd, c.what, c.id, c.r.Outside, c.r.Outside+c.r.Count-1, a.from, c.what, b.Name, c.what, c.what)
		}
	}
	return nil
}
