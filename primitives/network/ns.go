// Package network wires boxes together the way Docker's bridge driver
// does: a bridge on the host side, a veth pair per box, addresses, routes,
// masquerade and published ports. Links, addresses and routes go through
// rtnetlink (vishvananda/netlink), rules through nf_tables
// (google/nftables) in a table of stepbox's own, each rule with a counter.
//
// Every netlink socket is opened inside the namespace it serves, on a
// locked thread that joins the namespace only for that and is moved back
// before it is unlocked (see NS.in): a socket stays in the namespace it
// was made in, so no thread has to stay there.
package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// HostNSEnv names the network namespace stepbox treats as the host side
// (a path such as /proc/PID/ns/net or /run/netns/NAME). Tests set it to a
// namespace they made, so they never touch the machine's own links,
// netfilter or sysctls. Unset: the session's own network namespace.
const HostNSEnv = "STEPBOX_NET_HOST_NS"

// NS names a network namespace by a path and the inode it had when it was
// recorded, so that a later open (teardown, a sweep after a crash) never
// acts on another namespace that took the path over.
type NS struct {
	Path string `json:"path"`
	Ino  uint64 `json:"ino"`
}

// HostNS returns the host side: $STEPBOX_NET_HOST_NS, or the calling
// process's own network namespace.
func HostNS() (NS, error) {
	p := os.Getenv(HostNSEnv)
	if p == "" {
		p = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	}
	return NSAt(p)
}

// NSAt names the network namespace at path.
func NSAt(path string) (NS, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NS{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return NS{Path: path, Ino: st.Ino}, nil
}

// ErrNSGone says a recorded namespace no longer exists: everything in it
// went with it.
var ErrNSGone = fmt.Errorf("the network namespace is gone")

// open returns an fd of the namespace, checked to be the recorded one. A
// namespace of the caller's own is found even when its recorded path has
// gone (the session that recorded it died).
func (n NS) open() (netns.NsHandle, error) {
	var self unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &self) == nil && self.Ino == n.Ino {
		return netns.GetFromPath("/proc/self/ns/net")
	}
	h, err := netns.GetFromPath(n.Path)
	if err != nil {
		return netns.None(), fmt.Errorf("open %s: %w", n.Path, ErrNSGone)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil || st.Ino != n.Ino {
		h.Close()
		return netns.None(), fmt.Errorf("%s is now another namespace: %w", n.Path, ErrNSGone)
	}
	return h, nil
}

// in runs fn on a locked thread that has joined the namespace
// (setns(2)), then moves the thread back. The thread is unlocked only once
// it is back in its own namespace; if going back fails it stays locked and
// the runtime ends it with its goroutine. It is not simply left to die:
// a box process started with PR_SET_PDEATHSIG gets its signal when the
// *thread* that forked it exits (prctl(2)), and any thread may be that one.
func (n NS) in(fn func() error) error {
	target, err := n.open()
	if err != nil {
		return err
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := netns.GetFromPath("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open /proc/thread-self/ns/net: %w", err)
			return
		}
		defer own.Close()
		if err := unix.Setns(int(target), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns(%s, CLONE_NEWNET): %w", n.Path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(own), unix.CLONE_NEWNET); err != nil {
			done <- errors.Join(ferr, fmt.Errorf("setns back to the session's network namespace: %w", err))
			return // still locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Handle opens an rtnetlink handle whose socket lives in the namespace.
func (n NS) Handle() (*netlink.Handle, error) {
	var h *netlink.Handle
	err := n.in(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("socket(AF_NETLINK, NETLINK_ROUTE) in %s: %w", n.Path, err)
		}
		return nil
	})
	return h, err
}

// Nft opens an nf_tables connection whose socket lives in the namespace.
func (n NS) Nft() (*nftables.Conn, error) {
	var c *nftables.Conn
	err := n.in(func() error {
		var err error
		c, err = nftables.New(nftables.AsLasting())
		if err != nil {
			return fmt.Errorf("socket(AF_NETLINK, NETLINK_NETFILTER) in %s: %w", n.Path, err)
		}
		return nil
	})
	return c, err
}

// Sysctl reads a net sysctl (name as in sysctl(8): net.ipv4.ip_forward) as
// the namespace sees it: /proc/sys/net is per network namespace, chosen by
// the opening thread's namespace.
func (n NS) Sysctl(name string) (string, error) {
	var v string
	err := n.in(func() error {
		b, err := os.ReadFile(sysctlPath(name))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// SetSysctl writes a net sysctl in the namespace.
func (n NS) SetSysctl(name, value string) error {
	return n.in(func() error {
		if err := os.WriteFile(sysctlPath(name), []byte(value), 0); err != nil {
			return fmt.Errorf("write %s: %w", sysctlPath(name), err)
		}
		return nil
	})
}

// readIn reads a file under /proc/thread-self as a thread in the
// namespace sees it (/proc/net is per network namespace).
func (n NS) readIn(path string) ([]byte, error) {
	var b []byte
	err := n.in(func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	return b, err
}

func sysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

func errNetUnreach() error { return unix.ENETUNREACH }

func isNoEnt(err error) bool { return errors.Is(err, os.ErrNotExist) }
