package images

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ResolveUser turns an image config's User ("1000", "1000:100", "app",
// "app:staff") into a uid and gid, reading names from the image's own
// /etc/passwd and /etc/group (either may be nil when the image has none),
// as runc does. A bare uid takes the gid of its passwd line, or 0.
func ResolveUser(user string, passwd, group io.Reader) (uid, gid uint32, err error) {
	u, g, hasGroup := strings.Cut(user, ":")
	users := readIDFile(passwd)
	if n, ok := number(u); ok {
		uid = n
		for _, e := range users {
			if e.id == uid {
				gid = e.gid
				break
			}
		}
	} else {
		found := false
		for _, e := range users {
			if e.name == u {
				uid, gid, found = e.id, e.gid, true
				break
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("user %q: the image's /etc/passwd has no such user", u)
		}
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if n, ok := number(g); ok {
		return uid, n, nil
	}
	for _, e := range readIDFile(group) {
		if e.name == g {
			return uid, e.id, nil
		}
	}
	return 0, 0, fmt.Errorf("group %q: the image's /etc/group has no such group", g)
}

type idEntry struct {
	name    string
	id, gid uint32
}

// readIDFile reads passwd(5) or group(5) lines: name:x:id[:gid:…].
func readIDFile(r io.Reader) []idEntry {
	if r == nil {
		return nil
	}
	var out []idEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		id, ok := number(f[2])
		if !ok {
			continue
		}
		e := idEntry{name: f[0], id: id}
		if len(f) > 3 {
			e.gid, _ = number(f[3])
		}
		out = append(out, e)
	}
	return out
}

func number(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}
