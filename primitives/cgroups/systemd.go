package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Systemd is what stepbox asks of systemd on a host it manages: a
// transient scope with Delegate=yes for the session (scope.go). The real
// one talks D-Bus (dbusSystemd); fixture tests stand in for it.
type Systemd interface {
	// Bus is "system" (stepbox runs as root) or "user" (rootless).
	Bus() string
	// Ping reads systemd's version over the bus: it answers, and changes
	// nothing (doctor).
	Ping() (version string, err error)
	// StartScope asks for the transient scope unit in slice, with
	// Delegate=yes and TasksMax=tasksMax, holding process pid (as systemd
	// numbers it; 0 is the caller), and returns once systemd has made it
	// and moved pid into it.
	StartScope(unit, slice string, pid int, tasksMax uint64) error
	// StopScope stops unit and waits for it: systemd ends what is left in
	// it and removes its cgroup, the delegated subtree included. A unit
	// that is not loaded is not an error.
	StopScope(unit string) error
}

// hostSystemd is the host's systemd when it runs the host (sd_booted(3):
// /run/systemd/system exists) on cgroup v2, else nil: on a hybrid host a
// transient scope lives in the v1 name=systemd tree, and the controllers
// stepbox uses are v1's, so placement stays as it was there.
func hostSystemd(root string, mode Mode) Systemd {
	if root != DefaultRoot || mode != Unified || !exists("/run/systemd/system") {
		return nil
	}
	return dbusSystemd{user: os.Geteuid() != 0}
}

// dbusSystemd is systemd's manager over D-Bus, through go-systemd: the
// system bus as root, the user's own bus (its user manager) rootless.
type dbusSystemd struct{ user bool }

// busTimeout bounds every call: a D-Bus that does not answer (a polkit
// prompt no one sees) must not hang the session.
const busTimeout = 25 * time.Second

func (d dbusSystemd) Bus() string {
	if d.user {
		return "user"
	}
	return "system"
}

// call runs fn on a fresh connection to the manager, bounded by
// busTimeout, and closes it.
func (d dbusSystemd) call(fn func(ctx context.Context, c *sdbus.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	var c *sdbus.Conn
	var err error
	if d.user {
		c, err = sdbus.NewUserConnectionContext(ctx)
	} else {
		c, err = sdbus.NewSystemConnectionContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("connect to systemd on the %s bus: %w", d.Bus(), err)
	}
	defer c.Close()
	return fn(ctx, c)
}

func (d dbusSystemd) Ping() (version string, err error) {
	err = d.call(func(ctx context.Context, c *sdbus.Conn) error {
		if version, err = c.GetManagerProperty("Version"); err != nil {
			return fmt.Errorf("read systemd's Version on the %s bus: %w", d.Bus(), err)
		}
		return nil
	})
	return version, err
}

// HostSystemd is the host's systemd when stepbox places its cgroups in a
// scope of it (cgroup v2 and systemd running the host), else nil.
func HostSystemd() Systemd {
	mode, err := Detect(DefaultRoot)
	if err != nil {
		return nil
	}
	return hostSystemd(DefaultRoot, mode)
}

func (d dbusSystemd) StartScope(unit, slice string, pid int, tasksMax uint64) error {
	props := []sdbus.Property{
		sdbus.PropDescription("stepbox session " + strings.TrimSuffix(unit, ".scope") + " and its boxes"),
		sdbus.PropSlice(slice),
		sdbus.PropPids(uint32(pid)),
		{Name: "Delegate", Value: godbus.MakeVariant(true)},
		{Name: "TasksMax", Value: godbus.MakeVariant(tasksMax)},
	}
	return d.call(func(ctx context.Context, c *sdbus.Conn) error {
		done := make(chan string, 1)
		if _, err := c.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
			return fmt.Errorf("StartTransientUnit %s on the %s bus: %w", unit, d.Bus(), err)
		}
		return wait(ctx, done, "StartTransientUnit "+unit)
	})
}

func (d dbusSystemd) StopScope(unit string) error {
	return d.call(func(ctx context.Context, c *sdbus.Conn) error {
		done := make(chan string, 1)
		if _, err := c.StopUnitContext(ctx, unit, "replace", done); err != nil {
			if noSuchUnit(err) {
				return nil
			}
			return fmt.Errorf("StopUnit %s on the %s bus: %w", unit, d.Bus(), err)
		}
		return wait(ctx, done, "StopUnit "+unit)
	})
}

// wait waits for a job's result: "done", or what systemd says went wrong.
func wait(ctx context.Context, done <-chan string, what string) error {
	select {
	case r := <-done:
		if r != "done" {
			return fmt.Errorf("%s: systemd's job ended %q (journalctl -u for why)", what, r)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: no answer from systemd within %s: %w", what, busTimeout, ctx.Err())
	}
}

// noSuchUnit tells systemd's "unit not loaded" answer.
func noSuchUnit(err error) bool {
	const name = "org.freedesktop.systemd1.NoSuchUnit"
	var de godbus.Error
	var dp *godbus.Error
	return errors.As(err, &de) && de.Name == name || errors.As(err, &dp) && dp.Name == name
}
