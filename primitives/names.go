package primitives

import "strings"

// DidYouMean names the words of a closed set nearest to one the learner
// typed, as "; did you mean limit?", or "" when none is near enough to
// be a typo of it: within one edit for a word of up to four letters, two
// up to eight, three beyond; a word typed in part counts as near.
func DidYouMean(typed string, set []string) string {
	// A word that differs only in case is the one meant, alone: fileb
	// for fileB, never fileA one edit away.
	var cased []string
	for _, w := range set {
		if w != typed && strings.EqualFold(w, typed) {
			cased = append(cased, w)
		}
	}
	if len(cased) > 0 && len(cased) <= 3 {
		return "; did you mean " + strings.Join(cased, " or ") + "?"
	}
	typed = strings.ToLower(typed)
	most := 1
	switch n := len([]rune(typed)); {
	case n > 8:
		most = 3
	case n > 4:
		most = 2
	}
	best, near := most+1, []string(nil)
	for _, w := range set {
		d := editDistance(typed, strings.ToLower(w))
		if len(typed) >= 3 && strings.HasPrefix(strings.ToLower(w), typed) {
			d = min(d, 1)
		}
		switch {
		case d == 0 || d > most || d > best:
		case d < best:
			best, near = d, []string{w}
		default:
			near = append(near, w)
		}
	}
	if len(near) == 0 || len(near) > 3 {
		return ""
	}
	return "; did you mean " + strings.Join(near, " or ") + "?"
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbouring letters that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	prev2 := make([]int, len(y)+1)
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(y)]
}
