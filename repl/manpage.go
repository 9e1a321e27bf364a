package repl

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// manCommand is the hidden subcommand that prints stepbox(1) in roff;
// `make install` writes it to man1/stepbox.1.
const manCommand = "__man"

// manPage is stepbox(1), written from the command line's table and the
// shell's command table: every subcommand, flag and shell command, with
// the kernel work and the man pages `help CMD` names.
func manPage() string {
	var b strings.Builder
	b.WriteString(".TH STEPBOX 1 \"\" \"stepbox\" \"User Commands\"\n")
	b.WriteString(".SH NAME\nstepbox \\- build a real Linux container one kernel primitive at a time\n")
	b.WriteString(".SH SYNOPSIS\n")
	for _, c := range cliCommands {
		fmt.Fprintf(&b, ".B %s\n.br\n", roff(c.line()))
	}
	b.WriteString(".SH DESCRIPTION\n" + roff("stepbox is an interactive shell in which you build a real Linux container one kernel primitive at a time: unshare each namespace, stack an overlay of read-only layers, pivot_root into it, make a cgroup and put limits on it. After every step it shows what changed in the live kernel. It needs root for namespaces, mounts and cgroups.") + "\n")
	b.WriteString(".SH COMMANDS\n")
	for _, c := range cliCommands {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(c.line()), roff(strings.ReplaceAll(c.Summary, "\n", " ")))
		for _, f := range c.ownFlags() {
			fmt.Fprintf(&b, ".RS\n.TP\n.B %s\n%s\n.RE\n", roff(flagForm(f)), roff(f.Help))
		}
	}
	b.WriteString(".SH OPTIONS\n" + roff("Before the command or anywhere after it.") + "\n")
	for _, f := range globalFlagList() {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(flagForm(f)), roff(f.Help))
	}
	b.WriteString(".SH SHELL COMMANDS\n" + roff("Typed at the stepbox prompt, or given to stepbox run one per line. Inside, help CMD says the same, and explain CMD shows what a step would do without doing it.") + "\n")
	for _, g := range groups {
		fmt.Fprintf(&b, ".SS %s\n", roff(g.title))
		for _, c := range commands {
			if c.Group == g.name {
				manCommandEntry(&b, c)
			}
		}
	}
	b.WriteString(".SH ENVIRONMENT\n")
	for _, e := range [][2]string{
		{"STEPBOX_STATE_DIR", "the state dir, as --state-dir"},
		{"NO_COLOR", "no colours or escape codes, as --plain"},
		{"COLUMNS", "the width stepbox writes to without a terminal (default 80)"},
		{"STEPBOX_NET_HOST_NS", "the network namespace (/proc/PID/ns/net or /run/netns/NAME) the net steps treat as the host side"},
		{"STEPBOX_UPPER_MB", "the size in MB of the tmpfs each box's upper dir gets when root runs stepbox (default 1/64 of MemAvailable, at most 1024, and at most what is left of the 1/2 of MemAvailable a session's boxes take together; 0: none, as when not root, said at start; any other value is refused at start)"},
		{"STEPBOX_IMAGE_MB", "the most, in MB, one image's layers may unpack to (their tars uncompressed) in image load and image pull, and apart from that the most their compressed blobs may come to, counted from the sizes the manifest gives before any is fetched and again as they arrive (default 4096, and at most 1/2 of what the layer store's filesystem has free); unpacking and fetching also stop before the filesystem they write to has less than 5% of its size, at most 512 MB, free"},
		{"STEPBOX_IMAGE_ENTRIES", "the most tar entries (files, directories, links, whiteouts: an inode each) one image's layers may hold in image load and image pull (default 1000000, and at most 1/2 of the inodes the layer store's filesystem has free); unpacking also stops before that filesystem has less than 5% of its inodes, at most 65536, free. A manifest of more than 4 MB and an image config of more than 8 MB are refused before they are read"},
		{"XDG_STATE_HOME", "where lesson progress is kept without a state dir"},
	} {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", e[0], roff(e[1]))
	}
	b.WriteString(".SH FILES\n.TP\n.B /run/stepbox, /var/lib/stepbox\n" + roff("state of root's sessions: boxes, ledgers, layers, images") + "\n")
	b.WriteString(".SH SEE ALSO\n" + roff(strings.Join(seeAlso(), ", ")) + "\n")
	return b.String()
}

// manCommandEntry writes one shell command and its sub-commands.
func manCommandEntry(b *strings.Builder, c *Command) {
	text := c.Summary
	if c.Kernel != "" {
		text += ". Kernel: " + c.Kernel
	}
	if c.Man != "" {
		text += ". See " + c.Man
	}
	fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roff(c.Usage), roff(text))
	for _, f := range c.Flags {
		fmt.Fprintf(b, ".RS\n.TP\n.B %s\n%s\n.RE\n", roff(strings.TrimSpace("--"+f.Name+" "+f.Value)), roff(f.Help))
	}
	if len(c.Sub) > 0 {
		b.WriteString(".RS\n")
		for _, s := range c.Sub {
			manCommandEntry(b, s)
		}
		b.WriteString(".RE\n")
	}
}

func flagForm(f cliFlag) string {
	dash := "--"
	if len(f.Name) == 1 {
		dash = "-"
	}
	return strings.TrimSpace(dash + f.Name + " " + f.Value)
}

// manRef is a man page reference, as unshare(2) or ip-link(8).
var manRef = regexp.MustCompile(`[a-z][a-z0-9_.-]*\([1-8][a-z]*\)`)

// seeAlso is every man page the shell commands cite, as name(section).
func seeAlso() []string {
	seen := map[string]bool{}
	var walk func(list []*Command)
	walk = func(list []*Command) {
		for _, c := range list {
			for _, m := range manRef.FindAllString(c.Man, -1) {
				seen[m] = true
			}
			walk(c.Sub)
		}
	}
	walk(commands)
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// roff escapes text for a man page: backslashes, hyphens (a plain "-" may
// print as a hyphen, not the minus a flag needs), a leading dot or quote,
// which would start a request, and every non-ASCII character as \[uXXXX]
// (troff reads bytes: groff(7), "Unicode").
func roff(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7f:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
