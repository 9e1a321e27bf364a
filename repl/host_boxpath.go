package repl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
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

// The walk starts at the tree's top, which it does not see: what leads
// to $BOX_ROOT (the box's mount namespace) and to $BOX_UPPER (the state
// dir's directories) is checked by the box (primitives.Box.RootTop,
// UpperTop), and so is each mount the walk crosses: a box with a mount
// namespace of its own can bind a host directory into its tree before
// pivot_root, which a walk for symlinks does not see (ut31 F1).

// boxTree is a tree a box controls, as a host command reaches it.
type boxTree struct {
	box      string // the box's name
	dir      string // its host path: /proc/PID/root…, the upper dir
	variable string // the variable that names it: $BOX_ROOT, $BOX_UPPER
	// top checks the way to dir and gives the mount ID (statx
	// STATX_MNT_ID) the walk below it starts from.
	top func() (int, error)
	// made says whether a mount the walk crosses (its mount ID and
	// major:minor) is one of stepbox's, and what it is.
	made func(id int, dev string) (bool, string)
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
			root := b.HostRoot()
			out = append(out, boxTree{b.Name, root, "$BOX_ROOT", func() (int, error) { return b.RootTop(root) }, b.MadeMount})
		}
		if f.Upper != "" {
			out = append(out, boxTree{b.Name, f.Upper, "$BOX_UPPER", func() (int, error) {
				if err := b.UpperTop(); err != nil {
					return 0, err
				}
				return mountIDOf(f.Upper)
			}, hostDirMade("the box's upper dir")})
		}
	}
	for _, e := range sh.bundles {
		if _, err := os.Lstat(e.rootfs); errors.Is(err, fs.ErrNotExist) {
			continue // removed since: nothing of the box's is read there
		}
		out = append(out, boxTree{e.box, e.rootfs, bundleVariable, func() (int, error) { return bundleTop(e.rootfs) },
			hostDirMade("the bundle's rootfs")})
	}
	return out
}

// hostDirMade is the made of a tree that is a host directory (the upper
// dir, a bundle's rootfs): the box mounts nothing in the host's mount
// namespace, nor does stepbox below it.
func hostDirMade(what string) func(int, string) (bool, string) {
	return func(int, string) (bool, string) {
		return false, "a mount of the host's below " + what + ", which stepbox never makes"
	}
}

// exportedBundle is a bundle `export bundle` wrote in the session. Its
// rootfs/ is a copy of the box's root with the box's symlinks as the box
// made them, and lesson 8 reads it from the host (`!ls
// $BOX_DIR/bundle/rootfs/app`): a box's /app -> /some/host/dir had that
// list the host's directory (ut33 F4). So it is a box tree for `!` as
// long as it is there, whether or not the box still is.
type exportedBundle struct {
	box    string // the box it was exported from
	rootfs string // its rootfs/, an absolute path
}

// bundleVariable is a bundle's tree's variable: none names it.
const bundleVariable = "export bundle"

// keepBundle makes the rootfs/ of the bundle written to dir a box tree
// for `!` (exportedBundle), once however often it is written.
func (sh *Shell) keepBundle(box, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(abs, "rootfs")
	for i, e := range sh.bundles {
		if e.rootfs == rootfs {
			sh.bundles[i].box = box
			return nil
		}
	}
	sh.bundles = append(sh.bundles, exportedBundle{box, rootfs})
	return nil
}

// bundleTop checks a bundle's rootfs itself: the directory export wrote,
// not a link in its place; and gives its mount ID.
func bundleTop(rootfs string) (int, error) {
	fi, err := os.Lstat(rootfs)
	switch {
	case err != nil:
		return 0, err
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(rootfs)
		return 0, fmt.Errorf("%s is a symlink (-> %s), not the directory export wrote", rootfs, target)
	case !fi.IsDir():
		return 0, fmt.Errorf("%s is not a directory", rootfs)
	}
	return mountIDOf(rootfs)
}

// mountIDOf is the mount ID of p itself (not following a last symlink).
func mountIDOf(p string) (int, error) {
	id, _, err := statMount(p)
	return id, err
}

// statMount is p's mount ID (statx STATX_MNT_ID, the number mountinfo
// shows) and device, without following a last symlink.
func statMount(p string) (int, string, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID|unix.STATX_TYPE, &stx); err != nil {
		return 0, "", err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, "", fmt.Errorf("statx %s: the kernel gave no mount ID (STATX_MNT_ID, Linux 5.8)", p)
	}
	return int(stx.Mnt_id), fmt.Sprintf("%d:%d", stx.Dev_major, stx.Dev_minor), nil
}

// hostPathsMax bounds how deep a word that holds a shell line of its own
// (sh -c '… $BOX_ROOT/…', itself in an sh -c …) is looked into.
const hostPathsMax = 3

// A line cannot be analysed the way the host's sh will run it: the words
// it checks are the literal ones. What the shell resolves later is out
// of sight — a relative path after a cd into a box's tree, a path kept in
// a variable or made by a command substitution, the files a recursive
// tool meets below a directory, a path that goes down a pipe to xargs.
// So a box's tree may appear only where nothing of that kind can follow:
// a word naming a file is walked (leavesTree); a word naming a DIRECTORY
// of the tree is taken only as an argument of a command that lists or
// describes it without following links, changing into it or printing
// its path into another command (dirRules, not in a pipe); and a
// line that mentions a box (its variables, paths or /proc/PID) in an
// assignment, a for loop, a read or a command substitution used as a
// command's argument is refused. The sound way to reach a box's files
// is from inside it: exec resolves every link in the box's own root.

// dirRules are the commands that may take a directory of a box's tree:
// they list or describe it (readlink: where /proc/PID/root leads) and
// follow none of its links, or (cp) copy it recursively, which copies a
// link as a link (-R implies -P), so nothing of the host is read through
// one. Each is refused with an option of follow: those that follow links
// (ls -L, du -L, stat -L on what is listed, --dereference) or, for cp,
// name the destination first (-t) or make links instead of copies (-l,
// -s: GNU cp dereferences a box's symlink to hard-link the host file it
// names, ut35 G6). A long option is refused abbreviated too, as getopt
// takes it (--li is --link). A command with needs takes the
// directory only with one of those options, and a source command only
// as what it reads, never as its last word, the destination: cp writes
// through a link it finds there.
var dirRules = map[string]dirRule{
	"ls": lists, "stat": lists, "du": lists, "file": lists, "test": lists, "[": lists, "readlink": lists,
	"cp": {follow: "LHtls", followLong: []string{"--dereference", "--target-directory", "--link", "--symbolic-link"}, needs: "aRr",
		needsLong: []string{"--recursive", "--archive"}, source: true},
}

// lists is the rule of a command that lists or describes a directory.
var lists = dirRule{follow: "LH", followLong: []string{"--dereference"}}

type dirRule struct {
	follow     string   // short options refused
	followLong []string // long options refused, with their abbreviations and longer names
	needs      string   // short options of which one is needed ("": none)
	needsLong  []string // long ones that serve as well
	source     bool     // never the last word
}

// lineBinds are commands that keep what they read in a variable.
var lineBinds = map[string]bool{"read": true, "mapfile": true, "readarray": true, "getopts": true, "export": true,
	"declare": true, "typeset": true, "local": true, "readonly": true, "set": true, "alias": true}

// refuseBoxSymlinks returns an error naming the first word of the host
// command line that, under a box's tree, crosses a symlink leading out of
// it, or that uses the tree in a way the check cannot follow; nil when
// none does. Words are expanded as the host's sh will ($BOX_* and the
// environment, globs against the files there); a word holding a command
// substitution is not, but the words inside it are.
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
	c := &hostCheck{cfg: cfg, trees: trees, marks: []string{"BOX_ROOT", "BOX_UPPER", "BOX_PID"}, tops: map[string]topOf{}}
	// The host's command starts where the session is: its relative
	// paths lead from there (treeOf).
	c.cwd, _ = os.Getwd()
	for _, t := range trees {
		c.marks = append(c.marks, t.dir)
		if strings.HasPrefix(t.dir, "/proc/") && strings.HasSuffix(t.dir, "/root") {
			c.marks = append(c.marks, strings.TrimSuffix(t.dir, "/root"))
		}
	}
	return c.line(line, 0)
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

type hostCheck struct {
	cfg   *expand.Config
	trees []boxTree
	marks []string // what names a box in a line's text: its variables, its paths, /proc/PID
	tops  map[string]topOf
	cwd   string // the session's working directory, "" where it has none
}

// topOf is a tree's top as checked once for the line.
type topOf struct {
	mount int
	err   error
}

// top checks t's top once per line.
func (c *hostCheck) top(t boxTree) (int, error) {
	r, ok := c.tops[t.dir]
	if !ok {
		r.mount, r.err = t.top()
		c.tops[t.dir] = r
	}
	return r.mount, r.err
}

// mentions says whether text names a box, and which mark it is.
func (c *hostCheck) mentions(text string) (string, bool) {
	for _, m := range c.marks {
		if strings.Contains(text, m) {
			return m, true
		}
	}
	return "", false
}

// text is n as the line has it.
func nodeText(n syntax.Node) string {
	var b strings.Builder
	syntax.NewPrinter().Print(&b, n)
	return b.String()
}

// callOf is where a word stands: the command it is an argument of, that
// command's arguments, and whether its output goes down a pipe.
type callOf struct {
	cmd   string
	args  []*syntax.Word
	piped bool
}

func (c *hostCheck) line(line string, depth int) error {
	f, err := syntax.NewParser().Parse(strings.NewReader(line), "")
	if err != nil {
		// The host's sh says what is wrong with the line; its words, as
		// blanks split them, are checked all the same.
		for _, w := range strings.Fields(os.Expand(line, func(n string) string { return c.cfg.Env.Get(n).String() })) {
			if err := c.word(w, callOf{}, nil); err != nil {
				return err
			}
		}
		return nil
	}
	at := map[*syntax.Word]callOf{}
	piped := map[*syntax.CallExpr]bool{}
	refuse := func(what, text, m string) {
		if err == nil {
			err = &CommandError{Cmd: "!", Err: boxIndirectError(what, text, m)}
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		if err != nil {
			return false
		}
		switch n := n.(type) {
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				syntax.Walk(n.X, func(m syntax.Node) bool {
					if ce, ok := m.(*syntax.CallExpr); ok {
						piped[ce] = true
					}
					return true
				})
			}
		case *syntax.CallExpr:
			if len(n.Args) == 0 {
				break
			}
			name := path.Base(n.Args[0].Lit())
			for _, a := range n.Args[1:] {
				at[a] = callOf{name, n.Args[1:], piped[n]}
			}
			if name == "cd" || name == "pushd" {
				if m, ok := c.mentions(nodeText(n)); ok {
					refuse("`"+name+"` changes into it: the paths the line names after it are relative and not checked", nodeText(n), m)
				}
			}
			if lineBinds[name] || name == "printf" && len(n.Args) > 1 && n.Args[1].Lit() == "-v" {
				if m, ok := c.mentions(nodeText(n)); ok {
					refuse("`"+name+"` keeps a value in a variable", nodeText(n), m)
				}
			}
		case *syntax.Assign:
			if m, ok := c.mentions(nodeText(n)); ok {
				refuse("an assignment keeps the path in a variable, which the check cannot follow to where it is used", nodeText(n), m)
			}
		case *syntax.ForClause:
			if m, ok := c.mentions(nodeText(n.Loop)); ok {
				refuse("a for loop keeps the path in a variable, which the check cannot follow to where it is used", nodeText(n.Loop), m)
			}
		case *syntax.Word:
			words, ferr := fields(c.cfg, n)
			if ferr != nil {
				// A command substitution: the words inside it come next.
				// What it prints becomes a word the check never sees, so
				// one that names a box may only be shown (echo, printf).
				if m, ok := c.mentions(nodeText(n)); ok {
					if w := at[n]; (w.cmd != "echo" && w.cmd != "printf") || w.piped {
						refuse("the output of a command substitution becomes a path the check cannot see", nodeText(n), m)
					}
				}
				return err == nil
			}
			for _, w := range words {
				if err = c.word(w, at[n], n); err != nil {
					return false
				}
				// A word that is a line of its own (sh -c "cat $BOX_ROOT/etc/m*"):
				// its words as the shell it goes to will expand them.
				if depth < hostPathsMax && strings.ContainsAny(w, "$*?[ \t\n;&|<>`") {
					if err = c.line(w, depth+1); err != nil {
						return false
					}
				}
			}
		}
		return err == nil
	})
	return err
}

// word checks each path in word that leads into a box's tree (an
// option's value too: --file=$BOX_ROOT/x).
func (c *hostCheck) word(word string, call callOf, self *syntax.Word) error {
	for _, p := range pathsIn(word) {
		t, rest, ok := c.treeOf(p)
		if !ok {
			if link, below, ok := c.procLink(p); ok {
				if fi, err := os.Stat(link); below || err == nil && fi.IsDir() && !c.dirAllowed(call, self) {
					return &CommandError{Cmd: "!", Err: procLinkError(word, link, call.cmd)}
				}
			}
			continue
		}
		top, err := c.top(t)
		if err != nil {
			return &CommandError{Cmd: "!", Err: boxTopError(t, word, rest, err, call.cmd)}
		}
		switch out := leavesTree(t, top, rest); {
		case out.link != "":
			return &CommandError{Cmd: "!", Err: boxSymlinkError(t, word, rest, out.link, out.target, call.cmd)}
		case out.mount != "":
			return &CommandError{Cmd: "!", Err: boxMountError(t, word, rest, out.mount, out.what, call.cmd)}
		case out.climbs:
			return &CommandError{Cmd: "!", Err: boxClimbError(t, word)}
		}
		if fi, err := os.Stat(t.dir + rest); err == nil && fi.IsDir() && !c.dirAllowed(call, self) {
			return &CommandError{Cmd: "!", Err: boxDirError(t, word, rest, call.cmd)}
		}
	}
	return nil
}

// pathsIn are the paths word may hand the host's command: the word
// itself, an option's value (--file=x, if=x) and, as an absolute path
// may start anywhere in a word (-f/x, x:/y), the tail from each /.
func pathsIn(word string) []string {
	out := []string{word}
	for i := 1; i < len(word); i++ {
		if word[i-1] == '=' || word[i] == '/' && word[i-1] != '/' {
			out = append(out, word[i:])
		}
	}
	return out
}

// treeOf says which box tree p leads into, and the rest of p below the
// tree's top, as leavesTree walks it. p is resolved as the host's
// command will: a relative path from the session's working directory,
// which the command inherits, and // and /./ are the one directory they
// name (ut34 F3: `export bundle bun1` then `!cat bun1/rootfs/leak`, or
// $BOX_DIR//bundle/rootfs/leak, printed the host file the box's link
// named). Up to the top, a .. is taken away with the name before it: the
// path runs through the host's directories there, which no box controls.
// Below the top, nothing is cleaned: a .. after a box's symlink climbs
// from where the link leads, which only the walk sees.
func (c *hostCheck) treeOf(p string) (boxTree, string, bool) {
	var tree boxTree
	_, rest, ok := c.upTo(p, func(at []string) bool {
		dir := "/" + strings.Join(at, "/")
		for _, t := range c.trees {
			if path.Clean(t.dir) == dir {
				tree = t
				return true
			}
		}
		return false
	})
	return tree, rest, ok
}

// upTo resolves p as the host's command will, a directory at a time
// (treeOf), until stop says the directories so far are where it ends,
// and returns them and the rest of p, not cleaned. ok is false where
// stop never does, or where p is relative and the session has no
// working directory (the command opens nothing relative either).
func (c *hostCheck) upTo(p string, stop func(at []string) bool) (at []string, rest string, ok bool) {
	if !path.IsAbs(p) {
		if c.cwd == "" {
			return nil, "", false
		}
		p = c.cwd + "/" + p
	}
	parts := strings.Split(p, "/")
	for i, name := range parts {
		switch name {
		case "", ".":
			continue
		case "..":
			if len(at) > 0 {
				at = at[:len(at)-1]
			}
			continue
		}
		at = append(at, name)
		if stop(at) {
			if i+1 < len(parts) {
				rest = "/" + strings.Join(parts[i+1:], "/")
			}
			return at, rest, true
		}
	}
	return nil, "", false
}

// procLink says whether p goes through a process's root, working
// directory or a directory it holds open (/proc/N/root, /proc/N/cwd,
// /proc/N/fd/K, and each thread's under /proc/N/task/T), which link the
// host's command into that process's tree, and whether p goes on below
// it. A box process's is a box's tree (ut34, left by its F3 fix: `!cat
// /proc/$BOX_PID/cwd/leak` printed the host file the box's /leak
// named), and only $BOX_ROOT's is walked (treeOf). /proc/self and
// /proc/thread-self are the host's command's own.
func (c *hostCheck) procLink(p string) (link string, below bool, ok bool) {
	at, rest, ok := c.upTo(p, func(at []string) bool { return procLinkLen(at) > 0 })
	if !ok {
		return "", false, false
	}
	return "/" + strings.Join(at, "/"), strings.Trim(rest, "/") != "", true
}

// procLinkLen is len(at) where at is a /proc link procLink means
// (proc N root, proc N fd K, proc N task T cwd, …), else 0.
func procLinkLen(at []string) int {
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	if len(at) < 3 || at[0] != "proc" || !digits(at[1]) {
		return 0
	}
	rest := at[2:]
	if len(rest) >= 2 && rest[0] == "task" && digits(rest[1]) {
		rest = rest[2:]
	}
	switch {
	case len(rest) == 1 && (rest[0] == "root" || rest[0] == "cwd"):
		return len(at)
	case len(rest) == 2 && rest[0] == "fd" && digits(rest[1]):
		return len(at)
	}
	return 0
}

// procLinkError refuses a path through a process's root, working
// directory or open directory.
func procLinkError(word, link, cmd string) error {
	use := "a command"
	if cmd != "" {
		use = "`" + viz.Escape(cmd) + "`"
	}
	return fmt.Errorf("%s goes through %s, given to %s: a process's root, working directory and open directories lead into its own tree, where a box's absolute symlink resolves at the host's / for a host command; only $BOX_ROOT and $BOX_UPPER are walked for such links. "+
		"Name the box's file under $BOX_ROOT, run the command inside the box (`exec`), or copy the box's files out with `export bundle`",
		viz.Escape(word), viz.Escape(link), use)
}

// dirAllowed says whether the word self of call may name a directory
// of a box's tree (dirRules). The options are the words as the host's sh
// expands them: a quoted '-l' or a variable holding it is an option to
// the command all the same, and a word that cannot be expanded without
// running something ($(echo -l)) may be any option, so it is refused.
func (c *hostCheck) dirAllowed(call callOf, self *syntax.Word) bool {
	r, ok := dirRules[call.cmd]
	if !ok || call.piped {
		return false
	}
	if r.source && (self == nil || len(call.args) < 2 || call.args[len(call.args)-1] == self) {
		return false
	}
	needed := r.needs == ""
	for _, a := range call.args {
		words, err := fields(c.cfg, a)
		if err != nil {
			return false
		}
		for _, w := range words {
			switch {
			case w == "--":
			case strings.HasPrefix(w, "--"):
				name, _, _ := strings.Cut(w, "=")
				for _, f := range r.followLong {
					if strings.HasPrefix(name, f) || strings.HasPrefix(f, name) {
						return false
					}
				}
				needed = needed || slices.Contains(r.needsLong, w)
			case strings.HasPrefix(w, "-") && len(w) > 1:
				if strings.ContainsAny(w[1:], r.follow) {
					return false
				}
				needed = needed || r.needs != "" && strings.ContainsAny(w[1:], r.needs)
			}
		}
	}
	return needed
}

// boxDirError refuses a directory of a box's tree where a command could
// go into it (cd, a recursive tool, a path sent on to another command).
func boxDirError(t boxTree, word, rest, cmd string) error {
	where := treeName(t)
	inside := "/" + strings.TrimLeft(rest, "/")
	use := "a command"
	if cmd != "" {
		use = "`" + viz.Escape(cmd) + "`"
	}
	return fmt.Errorf("%s is a directory in %s, given to %s, which may change into it, walk it or pass its path on: what is below it is not checked, and a symlink the box made there would lead the host's command to a host file. "+
		"Only `ls`, `stat`, `du`, `file`, `test` and `readlink` (without -L, not into a pipe) take a box's directory, and `cp -a` or `cp -r` (without -L, -l, -s or -t) as what it copies from. Name the file itself, run the command inside the box (`exec ls -l %s`), or copy the box's files out with `export bundle`",
		viz.Escape(word), where, use, viz.Escape(inside))
}

// boxIndirectError refuses a line that keeps or builds a path of a
// box's tree where the check cannot follow it.
func boxIndirectError(what, text, mark string) error {
	return fmt.Errorf("%q names a box (%s), and %s: a symlink the box made there would lead the host's command to a host file. "+
		"Name the box's path directly in the command's words ($BOX_ROOT/etc/motd), run the command inside the box (`exec cat /etc/motd`), or copy the box's files out with `export bundle`",
		viz.Escape(text), viz.Escape(mark), what)
}

// symlinksMax is the kernel's limit on symlinks followed in one path
// (MAXSYMLINKS): past it the host's command gets ELOOP.
const symlinksMax = 40

// treeExit is where a path under a box's tree leads out of it.
type treeExit struct {
	link, target string // a symlink leading out, and where it leads
	mount, what  string // a mount point stepbox did not make, and what is mounted there
	climbs       bool   // the word's own .. climbs above the tree's top
}

// leavesTree walks rel under t's top (its mount ID top) as the kernel
// resolves it, a component at a time without following a symlink
// (statx AT_SYMLINK_NOFOLLOW), and reports the first place it leads the
// host out of the tree: an absolute symlink (the host resolves it from
// its own /), a symlink whose .. climbs above the top, a mount stepbox
// did not make (t.made), or a .. of the word's own that climbs above
// the top: above it the path runs through what the box may arrange (its
// mount namespace above $BOX_ROOT before pivot_root, the box's work dir
// beside $BOX_UPPER), which no walk checks. A relative symlink that stays
// inside is followed, as the host's command will. A component that does
// not exist ends the walk: what a command makes there, it makes inside
// (the components before it are the tree's own directories).
func leavesTree(t boxTree, top int, rel string) treeExit {
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
	var done []string    // components resolved so far: none a symlink
	mounts := []int{top} // the mount each of done is on, the top's first
	var out treeExit
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
					return out // the link that climbs
				}
				return treeExit{climbs: true}
			}
			done, mounts = done[:len(done)-1], mounts[:len(mounts)-1]
			continue
		}
		p := path.Join(append([]string{t.dir}, append(done, c.name)...)...)
		id, dev, err := statMount(p)
		if err != nil {
			return treeExit{} // missing, or the host's command fails on it as statx did
		}
		if id != mounts[len(mounts)-1] {
			if made, what := t.made(id, dev); !made {
				return treeExit{mount: "/" + path.Join(append(done, c.name)...), what: what}
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return treeExit{}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done, mounts = append(done, c.name), append(mounts, id)
			continue
		}
		if links++; links > symlinksMax {
			return treeExit{}
		}
		target, err := os.Readlink(p)
		if err != nil {
			return treeExit{}
		}
		out = treeExit{link: "/" + path.Join(append(done, c.name)...), target: target}
		if strings.HasPrefix(target, "/") {
			return out
		}
		todo = append(split(target, true), todo...)
	}
	return treeExit{}
}

// boxSymlinkError says which word was refused, the symlink of the box's
// and where it leads, and how to read the file as the box sees it.
func boxSymlinkError(t boxTree, word, rest, link, target, cmd string) error {
	where := treeName(t)
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

// treeName is how a message names t: box B's root ($BOX_ROOT).
func treeName(t boxTree) string {
	switch t.variable {
	case "$BOX_UPPER":
		return "box " + t.box + "'s upper dir (" + t.variable + ")"
	case bundleVariable:
		return "the rootfs of box " + t.box + "'s bundle (" + bundleVariable + " copied the box's symlinks as they are)"
	}
	return "box " + t.box + "'s root (" + t.variable + ")"
}

// insideAdvice is the `exec` to type instead of a refused host command.
func insideAdvice(rest, cmd string) string {
	if cmd == "" {
		cmd = "CMD"
	}
	return fmt.Sprintf("Run it inside the box, which sees its own files as the box does: `exec %s %s`", viz.Escape(cmd), viz.Escape("/"+strings.TrimLeft(rest, "/")))
}

// boxTopError refuses a word in a tree whose top is not as stepbox made
// it: a link in the upper dir's place, a directory on the way the box
// owns, a mount over the box's root.
func boxTopError(t boxTree, word, rest string, why error, cmd string) error {
	return fmt.Errorf("%s is in %s, and the way to %s is not as stepbox made it: %s. The host's command could reach a host file the box chose, not the box's, so it is not run. %s",
		viz.Escape(word), treeName(t), viz.Escape(t.dir), viz.Escape(why.Error()), insideAdvice(rest, cmd))
}

// boxMountError refuses a word that crosses a mount in the box's tree
// that no step of stepbox's made.
func boxMountError(t boxTree, word, rest, mount, what, cmd string) error {
	return fmt.Errorf("%s is in %s, where %s is a mount point stepbox did not make (%s): the box can bind a host directory into its tree (before pivot_root, and the bind stays after it), and the host's command would reach a host file, not the box's, so it is not run. %s",
		viz.Escape(word), treeName(t), viz.Escape(mount), viz.Escape(what), insideAdvice(rest, cmd))
}

// boxClimbError refuses a word whose own .. climbs above a tree's top.
func boxClimbError(t boxTree, word string) error {
	return fmt.Errorf("%s climbs out of %s with ..: above it the path runs through what the box may arrange (its mount namespace, the dirs it owns beside its upper dir), which is not checked, so it is not run. Name a path inside the tree, or the host's own path without going through the box's",
		viz.Escape(word), treeName(t))
}
