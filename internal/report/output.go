package report

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// Render writes rep as format: json, junit, html, or text, the command's
// own (text).
func Render(w io.Writer, format string, rep *model.Report, text func(io.Writer, *model.Report)) error {
	switch format {
	case "json":
		return JSON(w, rep)
	case "junit":
		return JUnit(w, rep, diagnose.Catalogue)
	case "html":
		return HTML(w, rep)
	}
	text(w, rep)
	return nil
}

// Output is where a report goes: standard output or an --output-file. It
// remembers its first write error (a full disk, /dev/full), so the run
// says so instead of exiting quietly, and removes a file it created if
// the run ends without a report (an error, Ctrl-C): nothing half-written
// is left.
type Output struct {
	w       io.Writer
	file    *os.File // nil: standard output
	path    string
	created bool
	err     error
	done    bool
}

// Create opens path, or stdout when path is "". A file is created before
// anything is deployed or measured, so a bad path costs no run.
func Create(path string, stdout io.Writer) (*Output, error) {
	if path == "" {
		return &Output{w: stdout}, nil
	}
	_, statErr := os.Stat(path)
	file, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("open output file: %w", err)
	}
	return &Output{w: file, file: file, path: path, created: errors.Is(statErr, fs.ErrNotExist)}, nil
}

func (o *Output) Write(b []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(b)
	if err != nil {
		o.err = fmt.Errorf("write report: %w", err)
	}
	return n, o.err
}

// Finish ends a report: the first thing that went wrong writing it, or
// rendering it (renderErr), flushed to the disk for a file. A file this
// run created and could not write whole is removed.
func (o *Output) Finish(renderErr error) error {
	if o.err == nil && renderErr != nil {
		o.err = fmt.Errorf("write report: %w", renderErr)
	}
	if o.file != nil && !o.done {
		// A character device (/dev/stdout, /dev/null) cannot sync: EINVAL.
		if err := o.file.Sync(); err != nil && o.err == nil && !errors.Is(err, syscall.EINVAL) {
			o.err = fmt.Errorf("write report to %s: %w", o.path, err)
		}
		if err := o.file.Close(); err != nil && o.err == nil {
			o.err = fmt.Errorf("write report to %s: %w", o.path, err)
		}
		if o.err != nil && o.created {
			os.Remove(o.path)
		}
	}
	o.done = true
	return o.err
}

// Discard ends a run that wrote no report (deferred: a no-op after
// Finish): the file is closed, and removed if this run created it.
func (o *Output) Discard() {
	if o.done || o.file == nil {
		return
	}
	o.done = true
	o.file.Close()
	if o.created {
		os.Remove(o.path)
	}
}
