package kubespray

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// iniValue types an INI inventory value as Ansible does: with Python's
// ast.literal_eval, keeping the text as a string when that fails. So
// `calico_mtu=1450` is a number, `calico_mtu="1450"` (in a [x:vars] section,
// where quotes are not removed first) is a string, and `flag=true` is the
// string "true" while `flag=True` is a boolean.
func iniValue(text string) any {
	p := &pyParser{s: strings.TrimLeft(text, " \t")}
	v, err := p.expr(0)
	if err == nil {
		p.space()
		// "1, 2" is a tuple to Python even without parentheses.
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			var rest []any
			if rest, err = p.items(0, 0); err == nil {
				v = append([]any{v}, rest...)
			}
		}
		p.space()
		if p.i < len(p.s) {
			err = errPy
		}
	}
	if err != nil {
		return text
	}
	return v
}

var errPy = fmt.Errorf("not a Python literal")

// pyParser reads the literals ast.literal_eval accepts: numbers (one sign),
// strings (with implicit concatenation), True, False, None, lists, tuples,
// sets and dicts. Anything else is not a literal; the caller keeps the text.
type pyParser struct {
	s string
	i int
}

// maxPyDepth stops a pathological nesting; Python itself gives up near 200.
const maxPyDepth = 100

// space skips blanks and a trailing comment, which Python's tokenizer ignores:
// `calico_mtu=1450 # note` is the number 1450.
func (p *pyParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f':
			p.i++
		case '#':
			p.i = len(p.s)
		default:
			return
		}
	}
}

func (p *pyParser) expr(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, errPy
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, errPy
	}
	switch c := p.s[p.i]; {
	case c == '[':
		p.i++
		return p.items(']', depth)
	case c == '(':
		p.i++
		return p.paren(depth)
	case c == '{':
		p.i++
		return p.brace(depth)
	case c == '+' || c == '-':
		p.i++
		p.space()
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		if c == '-' {
			switch x := n.(type) {
			case int:
				return -x, nil
			case float64:
				return -x, nil
			}
		}
		return n, nil
	case c >= '0' && c <= '9' || c == '.' && p.i+1 < len(p.s) && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9':
		return p.number()
	}
	if s, ok, err := p.strings(); ok || err != nil {
		return s, err
	}
	for _, w := range []struct {
		word string
		val  any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) && !p.identAt(p.i+len(w.word)) {
			p.i += len(w.word)
			return w.val, nil
		}
	}
	return nil, errPy
}

func (p *pyParser) identAt(i int) bool {
	if i >= len(p.s) {
		return false
	}
	c := p.s[i]
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// number reads a Python int or float. Complex numbers, which Ansible turns back
// into text, are left as text here too.
func (p *pyParser) number() (any, error) {
	start := p.i
	for p.i < len(p.s) && (p.identAt(p.i) || p.s[p.i] == '.' ||
		(p.s[p.i] == '+' || p.s[p.i] == '-') && p.i > start && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E')) {
		p.i++
	}
	tok := p.s[start:p.i]
	if tok == "" || strings.Contains(tok, "__") || strings.HasSuffix(tok, "_") {
		return nil, errPy
	}
	lower := strings.ToLower(tok)
	if len(lower) > 1 && lower[0] == '0' && strings.IndexAny(lower[1:2], "xob") == 0 {
		n, err := strconv.ParseInt(lower, 0, 0) // 0x, 0o, 0b with underscores, as Python
		if err != nil {
			return nil, errPy
		}
		return int(n), nil
	}
	digits := strings.ReplaceAll(lower, "_", "")
	if strings.ContainsAny(digits, ".e") {
		if strings.ContainsAny(digits, "abcdfghijklmnopqrstuvwxyz") || strings.Contains(lower, "_.") || strings.Contains(lower, "._") {
			return nil, errPy
		}
		f, err := strconv.ParseFloat(digits, 64)
		if err != nil {
			return nil, errPy
		}
		return f, nil
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return nil, errPy
		}
	}
	// Python 3 refuses leading zeros ("0644" is a syntax error) except for 0 itself.
	if len(digits) > 1 && digits[0] == '0' && strings.Trim(digits, "0") != "" {
		return nil, errPy
	}
	n, err := strconv.ParseInt(digits, 10, 0)
	if err != nil {
		return nil, errPy // a number too big for int: kept as text
	}
	return int(n), nil
}

// strings reads one or more adjacent string literals ('a' "b" is "ab").
func (p *pyParser) strings() (string, bool, error) {
	var b strings.Builder
	found := false
	for {
		save := p.i
		if found {
			p.space()
		}
		s, ok, err := p.str()
		if err != nil {
			return "", true, err
		}
		if !ok {
			p.i = save
			return b.String(), found, nil
		}
		found = true
		b.WriteString(s)
	}
}

// str reads one string literal with an optional r/u/b prefix.
func (p *pyParser) str() (string, bool, error) {
	j := p.i
	raw := false
	for j < len(p.s) && strings.IndexByte("rRuUbB", p.s[j]) >= 0 && j-p.i < 2 {
		raw = raw || p.s[j] == 'r' || p.s[j] == 'R'
		j++
	}
	if j >= len(p.s) || p.s[j] != '\'' && p.s[j] != '"' {
		return "", false, nil
	}
	q := p.s[j : j+1]
	if strings.HasPrefix(p.s[j:], strings.Repeat(q, 3)) {
		q = strings.Repeat(q, 3)
	}
	j += len(q)
	var b strings.Builder
	for {
		if j >= len(p.s) {
			return "", true, errPy
		}
		if strings.HasPrefix(p.s[j:], q) {
			p.i = j + len(q)
			return b.String(), true, nil
		}
		c := p.s[j]
		if c == '\n' && len(q) == 1 {
			return "", true, errPy
		}
		if c != '\\' {
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(p.s) {
			return "", true, errPy
		}
		if raw {
			b.WriteString(p.s[j : j+2])
			j += 2
			continue
		}
		n, err := escape(&b, p.s[j+1:])
		if err != nil {
			return "", true, err
		}
		j += 1 + n
	}
}

// escape writes the character a Python escape (after the backslash) stands
// for and returns how many bytes it used. Unknown escapes keep the backslash,
// as Python does.
func escape(b *strings.Builder, s string) (int, error) {
	simple := map[byte]string{'\\': "\\", '\'': "'", '"': "\"", 'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v", '\n': ""}
	if r, ok := simple[s[0]]; ok {
		b.WriteString(r)
		return 1, nil
	}
	hex := map[byte]int{'x': 2, 'u': 4, 'U': 8}
	if n, ok := hex[s[0]]; ok {
		if len(s) < 1+n {
			return 0, errPy
		}
		v, err := strconv.ParseUint(s[1:1+n], 16, 32)
		if err != nil || v > utf8.MaxRune {
			return 0, errPy
		}
		b.WriteRune(rune(v))
		return 1 + n, nil
	}
	if s[0] >= '0' && s[0] <= '7' {
		n := 1
		for n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			n++
		}
		v, _ := strconv.ParseUint(s[:n], 8, 32)
		b.WriteRune(rune(v))
		return n, nil
	}
	if s[0] == 'N' {
		return 0, errPy // named characters: not worth a table; kept as text
	}
	b.WriteByte('\\')
	return 0, nil
}

// items reads list elements up to close (0: the end of the text).
func (p *pyParser) items(close byte, depth int) ([]any, error) {
	l := []any{}
	for {
		p.space()
		if close == 0 && p.i >= len(p.s) {
			return l, nil
		}
		if close != 0 && p.i < len(p.s) && p.s[p.i] == close {
			p.i++
			return l, nil
		}
		v, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		p.space()
		if p.i >= len(p.s) {
			if close == 0 {
				return l, nil
			}
			return nil, errPy
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case close:
			if close == 0 {
				return nil, errPy
			}
		default:
			return nil, errPy
		}
	}
}

// paren reads (x) as x and (x,) or () as a tuple (a list to Ansible).
func (p *pyParser) paren(depth int) (any, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ')' {
		p.i++
		return []any{}, nil
	}
	v, err := p.expr(depth + 1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ')' {
		p.i++
		return v, nil
	}
	if p.i >= len(p.s) || p.s[p.i] != ',' {
		return nil, errPy
	}
	p.i++
	rest, err := p.items(')', depth)
	if err != nil {
		return nil, err
	}
	return append([]any{v}, rest...), nil
}

// brace reads a dict, or a set (a list to Ansible).
func (p *pyParser) brace(depth int) (any, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return map[string]any{}, nil
	}
	first, err := p.expr(depth + 1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != ':' {
		switch {
		case p.i < len(p.s) && p.s[p.i] == ',':
			p.i++
		case p.i >= len(p.s) || p.s[p.i] != '}':
			return nil, errPy
		}
		rest, err := p.items('}', depth)
		if err != nil {
			return nil, err
		}
		return append([]any{first}, rest...), nil
	}
	m := map[string]any{}
	key := first
	for {
		p.i++ // the colon
		v, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if !hashable(key) {
			return nil, errPy
		}
		m[fmt.Sprint(key)] = v
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			p.space()
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return m, nil
		}
		if key, err = p.expr(depth + 1); err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, errPy
		}
	}
}

func hashable(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return false
	}
	return true
}
