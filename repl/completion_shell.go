package repl

import (
	"fmt"
	"os"
	"strings"
)

// completionShells are the completionShells `stepbox completion` writes a script for.
var completionShells = []string{"bash", "zsh", "fish"}

// completionMain is `stepbox completion bash|zsh|fish`.
func completionMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "stepbox completion: name one shell: %s\n", strings.Join(completionShells, ", "))
		return 2
	}
	script, err := completionScript(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox completion:", err)
		return 2
	}
	fmt.Print(script)
	return 0
}

// completionScript is the completion script for shell, written from
// cliCommands and the flag sets.
func completionScript(shell string) (string, error) {
	switch shell {
	case "bash":
		return bashCompletion(), nil
	case "zsh":
		return zshCompletion(), nil
	case "fish":
		return fishCompletion(), nil
	}
	return "", fmt.Errorf("%q: the completionShells are %s", clip(shell), strings.Join(completionShells, ", "))
}

// cliFlagsOf is every flag c takes: the global ones when it takes them,
// then its own.
func cliFlagsOf(c cliCommand) []cliFlag {
	var fl []cliFlag
	if c.Global {
		fl = globalFlagList()
	}
	return append(fl, c.ownFlags()...)
}

// allCLIFlags is every flag of every subcommand, once each.
func allCLIFlags() []cliFlag {
	seen := map[string]bool{}
	var out []cliFlag
	for _, c := range cliCommands {
		for _, f := range cliFlagsOf(c) {
			if !seen[f.Name] {
				seen[f.Name] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// completionWords are the words subcommand c completes: its fixed words,
// then the lesson numbers.
func completionWords(c cliCommand) []string {
	w := append([]string(nil), c.Words...)
	if c.Lessons {
		w = append(w, lessonNumbers()...)
	}
	return w
}

func dashed(f cliFlag) string { return strings.TrimSuffix(flagForm(cliFlag{Name: f.Name}), " ") }

// valueFlags are the flags whose value is the next word.
func valueFlags() []string {
	var out []string
	for _, f := range allCLIFlags() {
		if !f.Switch {
			out = append(out, dashed(f))
		}
	}
	return out
}

func bashCompletion() string {
	var b strings.Builder
	b.WriteString("# bash completion for stepbox, written by `stepbox completion bash`\n")
	b.WriteString("_stepbox() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} sub= i\n")
	b.WriteString("\tcase $prev in\n")
	for _, f := range allCLIFlags() {
		if f.Switch {
			continue
		}
		fmt.Fprintf(&b, "\t%s) %s; return ;;\n", dashed(f), bashValue(f))
	}
	b.WriteString("\tesac\n")
	fmt.Fprintf(&b, "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase ${COMP_WORDS[i]} in\n\t\t%s) ((i++)) ;;\n\t\t-*) ;;\n\t\t*) sub=${COMP_WORDS[i]}; break ;;\n\t\tesac\n\tdone\n", strings.Join(valueFlags(), "|"))
	b.WriteString("\tcase $sub in\n")
	for _, c := range cliCommands {
		var flags []string
		for _, f := range cliFlagsOf(c) {
			flags = append(flags, dashed(f))
		}
		words := completionWords(c)
		if c.Name == "" {
			words = cliNames()
		}
		fmt.Fprintf(&b, "\t%q)\n\t\tif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", c.Name, strings.Join(flags, " "))
		files := ""
		if c.Files {
			files = " -f"
		}
		fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen%s -W %q -- \"$cur\")) ;;\n", files, strings.Join(words, " "))
	}
	b.WriteString("\tesac\n}\ncomplete -F _stepbox stepbox\n")
	return b.String()
}

// bashValue completes a flag's value: a directory, a file, one of its
// choices, or nothing (a cgroup path, an address, seconds).
func bashValue(f cliFlag) string {
	switch {
	case len(f.Choices) > 0:
		return fmt.Sprintf("COMPREPLY=($(compgen -W %q -- \"$cur\"))", strings.Join(f.Choices, " "))
	case f.Value == "DIR":
		return "COMPREPLY=($(compgen -d -- \"$cur\"))"
	case f.Value == "FILE":
		return "COMPREPLY=($(compgen -f -- \"$cur\"))"
	}
	return "COMPREPLY=()"
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef stepbox\n# zsh completion for stepbox, written by `stepbox completion zsh`\n")
	b.WriteString("_stepbox() {\n\tlocal prev=${words[CURRENT-1]} sub= i\n\tcase $prev in\n")
	for _, f := range allCLIFlags() {
		if f.Switch {
			continue
		}
		v := "return 0"
		switch {
		case len(f.Choices) > 0:
			v = "compadd -- " + strings.Join(f.Choices, " ") + "; return"
		case f.Value == "DIR":
			v = "_path_files -/; return"
		case f.Value == "FILE":
			v = "_files; return"
		}
		fmt.Fprintf(&b, "\t%s) %s ;;\n", dashed(f), v)
	}
	b.WriteString("\tesac\n")
	fmt.Fprintf(&b, "\tfor ((i = 2; i < CURRENT; i++)); do\n\t\tcase ${words[i]} in\n\t\t%s) ((i++)) ;;\n\t\t-*) ;;\n\t\t*) sub=${words[i]}; break ;;\n\t\tesac\n\tdone\n", strings.Join(valueFlags(), "|"))
	b.WriteString("\tcase $sub in\n")
	for _, c := range cliCommands {
		fmt.Fprintf(&b, "\t%s)\n\t\tif [[ $PREFIX == -* ]]; then\n\t\t\tlocal -a flags=(", zshWord(c.Name))
		for _, f := range cliFlagsOf(c) {
			b.WriteString(" " + zshWord(dashed(f)+":"+f.Help))
		}
		b.WriteString(" )\n\t\t\t_describe flag flags; return\n\t\tfi\n")
		if c.Name == "" {
			b.WriteString("\t\tlocal -a subs=(")
			for _, s := range cliCommands[1:] {
				b.WriteString(" " + zshWord(s.Name+":"+strings.ReplaceAll(s.Summary, "\n", " ")))
			}
			b.WriteString(" )\n\t\t_describe command subs ;;\n")
			continue
		}
		words := completionWords(c)
		if c.Files {
			b.WriteString("\t\t_files\n")
		}
		if len(words) > 0 {
			fmt.Fprintf(&b, "\t\tcompadd -- %s", strings.Join(words, " "))
		} else {
			b.WriteString("\t\treturn 1")
		}
		b.WriteString(" ;;\n")
	}
	b.WriteString("\tesac\n}\n_stepbox \"$@\"\n")
	return b.String()
}

// zshWord single-quotes s for zsh; a colon in the name part would end it,
// and no name has one.
func zshWord(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for stepbox, written by `stepbox completion fish`\ncomplete -c stepbox -f\n")
	for _, c := range cliCommands[1:] {
		fmt.Fprintf(&b, "complete -c stepbox -n __fish_use_subcommand -a %s -d %s\n", c.Name, fishWord(strings.ReplaceAll(c.Summary, "\n", " ")))
	}
	for _, c := range cliCommands {
		cond := "__fish_use_subcommand"
		if c.Name != "" {
			cond = "'__fish_seen_subcommand_from " + c.Name + "'"
		}
		if words := completionWords(c); len(words) > 0 {
			fmt.Fprintf(&b, "complete -c stepbox -n %s -a %s\n", cond, fishWord(strings.Join(words, " ")))
		}
		if c.Files {
			fmt.Fprintf(&b, "complete -c stepbox -n %s -F\n", cond)
		}
		for _, f := range cliFlagsOf(c) {
			opt := "-l " + f.Name
			if len(f.Name) == 1 {
				opt = "-s " + f.Name
			}
			switch {
			case len(f.Choices) > 0:
				opt += " -x -a " + fishWord(strings.Join(f.Choices, " "))
			case f.Value == "DIR":
				opt += " -x -a '(__fish_complete_directories)'"
			case f.Value == "FILE":
				opt += " -r -F"
			case !f.Switch:
				opt += " -x"
			}
			fmt.Fprintf(&b, "complete -c stepbox -n %s %s -d %s\n", cond, opt, fishWord(f.Help))
		}
	}
	return b.String()
}

func fishWord(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}
