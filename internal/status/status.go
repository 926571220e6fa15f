// Package status tells the user what a command is doing while it runs:
// one line updated in place on a terminal, plain lines otherwise (CI
// logs).
package status

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// Line is a command's progress line. Say is safe for concurrent use.
type Line struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex
}

// New writes progress to w (standard error).
func New(w io.Writer) *Line {
	l := &Line{w: w}
	if f, ok := w.(*os.File); ok {
		l.tty = term.IsTerminal(int(f.Fd()))
	}
	return l
}

// Say replaces the line on a terminal, adds one otherwise.
func (l *Line) Say(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	if l.tty {
		fmt.Fprintf(l.w, "\r\033[K%s", msg)
		return
	}
	fmt.Fprintln(l.w, msg)
}

// Done clears the line on a terminal, before the report.
func (l *Line) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tty {
		fmt.Fprint(l.w, "\r\033[K")
	}
}
