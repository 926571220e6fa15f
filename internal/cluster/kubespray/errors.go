package kubespray

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a problem in one inventory file, located for the person who has to
// fix it: the message is "file:line: what is wrong (what to do)", one line.
type Error struct {
	File string // path of the file (the inventory directory joined with its place in it)
	Line int    // 1-based; 0 when there is no line (a missing file, a Kubespray default)
	Msg  string // what is wrong
	Hint string // what to do about it
}

func (e *Error) Error() string { return locate(e.File, e.Line, e.Msg, e.Hint) }

// locate formats errors and warnings alike. Newlines are flattened because a
// caller prints one problem per line; user text inside is already %q-quoted.
func locate(file string, line int, msg, hint string) string {
	s := file
	if line > 0 {
		s = fmt.Sprintf("%s:%d", file, line)
	}
	s += ": " + msg
	if hint != "" {
		s += " (" + hint + ")"
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// quote shows a value from the user's file in a message: quoted so spaces and
// control characters are visible, and cut short so a 4 MiB line stays readable.
func quote(s string) string {
	const max = 60
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return fmt.Sprintf("%q…", string(r[:max]))
	}
	return fmt.Sprintf("%q", s)
}

// show renders any variable value for a message.
func show(v any) string {
	if s, ok := v.(string); ok {
		return quote(s)
	}
	return quote(fmt.Sprint(v))
}
