package kubespray

import "errors"

// shlexSplit splits an INI host line as Ansible does (Python's shlex.split
// with comments=True, posix=True): whitespace separates words, quotes group
// and are removed, a backslash escapes outside single quotes, and an unquoted
// # ends the line even inside a word (`a=b#c` is `a=b`).
func shlexSplit(line string) ([]string, error) {
	var (
		words  []string
		word   []rune
		inWord bool // a word has started, even an empty quoted one
	)
	end := func() {
		if inWord {
			words = append(words, string(word))
		}
		word, inWord = nil, false
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			end()
		case c == '#':
			end()
			return words, nil
		case c == '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("no escaped character after the final backslash")
			}
			i++
			word, inWord = append(word, rs[i]), true
		case c == '\'' || c == '"':
			inWord = true
			closed := false
			for i++; i < len(rs); i++ {
				if rs[i] == c {
					closed = true
					break
				}
				// In double quotes a backslash escapes only " and itself.
				if c == '"' && rs[i] == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\') {
					i++
				}
				word = append(word, rs[i])
			}
			if !closed {
				return nil, errors.New("no closing quotation")
			}
		default:
			word, inWord = append(word, c), true
		}
	}
	end()
	return words, nil
}
