package primitives

import (
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
