package report

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// esc makes a value from the network or an inventory safe to print on a
// terminal line: control characters (newlines, tabs, ANSI escapes, C1),
// bidirectional overrides and invalid UTF-8 are shown as escapes, so a
// name can neither forge lines (of the suggested fix commands, say) nor
// drive the terminal. The renderers print their own newlines; a value
// never carries one. HTML and JSON escape on their own.
func esc(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || isBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || isBidi(r) {
			return true
		}
	}
	return false
}

// isBidi: the explicit directional formatting characters, which reorder
// what a terminal shows ("Trojan Source").
func isBidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// escAll escapes each value.
func escAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = esc(s)
	}
	return out
}
