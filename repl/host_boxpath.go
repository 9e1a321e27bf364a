package repl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"stepbox/viz"
)

// A `!` host command sees a box's files the host's way: $BOX_ROOT is
// /proc/PID/root, through which the kernel restarts an absolute symlink
// at the host's own / (not the box's), and $BOX_UPPER is a host
// directory, out of which a relative symlink's .. climbs. A box that
// makes /etc/motd a symlink to /etc/shadow would have lesson 3's
// `!cat $BOX_ROOT/etc/motd` (typed, or run by `solution --run` and
// `demo` on a projector) print the host's file. So before a host command
// runs, each of its words that names a path in a box's tree is walked
// component by component, without following a symlink (lstat), and a
// symlink that leads the host out of the tree refuses the command.

// boxTree is a tree a box controls, as a host command reaches it.
type boxTree struct {
	box      string // the box's name
	dir      string // its host path: /proc/PID/root…, the upper dir
	variable string // the variable that names it: $BOX_ROOT, $BOX_UPPER
}

// boxTrees are the trees of the session's boxes: each root of a box's
// own (an overlay; without one, /proc/PID/root is the host's tree) and
// each overlay's upper dir.
func (sh *Shell) boxTrees() []boxTree {
	if sh.Session == nil {
		return nil
	}
	var out []boxTree
	for _, b := range sh.Session.Boxes() {
		f := b.FS()
		if f.Merged != "" && b.CommandPID() > 0 {
			out = append(out, boxTree{b.Name, b.HostRoot(), "$BOX_ROOT"})
		}
		if f.Upper != "" {
			out = append(out, boxTree{b.Name, f.Upper, "$BOX_UPPER"})
		}
	}
	return out
}

// hostPathsMax bounds how deep a word that holds a shell line of its own
// (sh -c '… $BOX_ROOT/…', itself in an sh -c …) is looked into.
const hostPathsMax = 3

// refuseBoxSymlinks returns an error naming the first word of the host
// command line that, under a box's tree, crosses a symlink leading out of
// it; nil when none does. Words are expanded as the host's sh will
// ($BOX_* and the environment, globs against the files there); a word
// holding a command substitution is not, but the words inside it are.
func (sh *Shell) refuseBoxSymlinks(line string) error {
	trees := sh.boxTrees()
	if len(trees) == 0 {
		return nil
	}
	vars := sh.boxVars()
	env := expand.FuncEnviron(func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return os.Getenv(name)
	})
	cfg := &expand.Config{Env: env, ReadDir2: os.ReadDir,
		// Nothing is run to expand a word: the expander would call a nil
		// ProcSubst (a <(…) word) without asking.
		ProcSubst: func(*syntax.ProcSubst) (string, error) { return "", errNotExpanded }}
	return checkHostLine(line, cfg, trees, 0)
}

var errNotExpanded = errors.New("not expanded")

// fields is expand.Fields, an error for a word it cannot expand without
// running something, or for which it fails outright.
func fields(cfg *expand.Config, w *syntax.Word) (out []string, err error) {
	defer func() {
		if recover() != nil {
			out, err = nil, errNotExpanded
		}
	}()
	return expand.Fields(cfg, w)
}

func checkHostLine(line string, cfg *expand.Config, trees []boxTree, depth int) error {
	f, err := syntax.NewParser().Parse(strings.NewReader(line), "")
	if err != nil {
		// The host's sh says what is wrong with the line; its words, as
		// blanks split them, are checked all the same.
		for _, w := range strings.Fields(os.Expand(line, func(n string) string { return cfg.Env.Get(n).String() })) {
			if err := checkHostWord(w, "", trees); err != nil {
				return err
			}
		}
		return nil
	}
	cmd := ""
	syntax.Walk(f, func(n syntax.Node) bool {
		if err != nil {
			return false
		}
		switch n := n.(type) {
		case *syntax.CallExpr:
			if len(n.Args) > 0 {
				cmd = n.Args[0].Lit()
			}
		case *syntax.Word:
			words, ferr := fields(cfg, n)
			if ferr != nil {
				return true // a command substitution: its words come next
			}
			for _, w := range words {
				if err = checkHostWord(w, cmd, trees); err != nil {
					return false
				}
				// A word that is a line of its own (sh -c "cat $BOX_ROOT/etc/m*"):
				// its words as the shell it goes to will expand them.
				if depth < hostPathsMax && strings.ContainsAny(w, "$*?[ \t\n;&|<>`") {
					if err = checkHostLine(w, cfg, trees, depth+1); err != nil {
						return false
					}
				}
			}
		}
		return true
	})
	return err
}

// checkHostWord checks each place in word where a box's tree starts (an
// option's value too: --file=$BOX_ROOT/x).
func checkHostWord(word, cmd string, trees []boxTree) error {
	for _, t := range trees {
		for i := 0; ; {
			j := strings.Index(word[i:], t.dir)
			if j < 0 {
				break
			}
			end := i + j + len(t.dir)
			if end == len(word) || word[end] == '/' {
				rest := word[end:]
				if link, target, out := leavesTree(t.dir, rest); out {
					return &CommandError{Cmd: "!", Err: boxSymlinkError(t, word, rest, link, target, cmd)}
				}
			}
			i = end
		}
	}
	return nil
}

// symlinksMax is the kernel's limit on symlinks followed in one path
// (MAXSYMLINKS): past it the host's command gets ELOOP.
const symlinksMax = 40

// leavesTree walks rel under root as the kernel resolves it, a component
// at a time with lstat, and reports the first symlink that leads the
// host out of root: an absolute one (the host resolves it from its own
// /), or one whose .. climbs above root. A relative symlink that stays
// inside is followed, as the host's command will. A component that does
// not exist ends the walk: what a command makes there, it makes inside
// (the components before it are the tree's own directories). A .. the
// word itself climbs above root with is the learner's own host path.
func leavesTree(root, rel string) (link, target string, out bool) {
	type part struct {
		name     string
		fromLink bool
	}
	split := func(p string, fromLink bool) []part {
		var ps []part
		for _, n := range strings.Split(p, "/") {
			ps = append(ps, part{n, fromLink})
		}
		return ps
	}
	todo := split(rel, false)
	var done []string // components resolved so far: none a symlink
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c.name {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				if c.fromLink {
					return link, target, true
				}
				return "", "", false
			}
			done = done[:len(done)-1]
			continue
		}
		p := path.Join(append([]string{root}, append(done, c.name)...)...)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", "", false // missing, or the host's command fails on it as lstat did
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c.name)
			continue
		}
		if links++; links > symlinksMax {
			return "", "", false
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", "", false
		}
		link, target = "/"+path.Join(append(done, c.name)...), t
		if strings.HasPrefix(t, "/") {
			return link, target, true
		}
		todo = append(split(t, true), todo...)
	}
	return "", "", false
}

// boxSymlinkError says which word was refused, the symlink of the box's
// and where it leads, and how to read the file as the box sees it.
func boxSymlinkError(t boxTree, word, rest, link, target, cmd string) error {
	where := "box " + t.box + "'s root (" + t.variable + ")"
	if t.variable == "$BOX_UPPER" {
		where = "box " + t.box + "'s upper dir (" + t.variable + ")"
	}
	how := "an absolute symlink, which the host's command resolves from the host's own /"
	if !strings.HasPrefix(target, "/") {
		how = "a symlink whose .. climbs out of the box's tree on the host"
	}
	inside := "/" + strings.TrimLeft(rest, "/")
	if cmd == "" {
		cmd = "CMD"
	}
	return fmt.Errorf("%s is in %s, where %s is %s (-> %s): the host's command would reach a host file, not the box's, so it is not run. "+
		"Run it inside the box, which resolves the link in its own root: `exec %s %s`",
		viz.Escape(word), where, viz.Escape(link), how, viz.Escape(target), viz.Escape(cmd), viz.Escape(inside))
}
