// Package safefile reads the files a user names (inventories, token files,
// kubeconfigs) without letting a wrong name hurt: only regular files, a
// size cap enforced while reading, and no open that can block.
package safefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MaxKubeconfigBytes bounds a kubeconfig podpath lets client-go read: a
// hundred clusters with embedded certificates fit in a few MiB.
const MaxKubeconfigBytes = 16 << 20

// MaxTokenBytes bounds a token file: a bearer token is tens of bytes, a
// service-account JWT about one KiB.
const MaxTokenBytes = 4 << 10

// ErrNotRegular: the path names a device, FIFO, socket or directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge: the file holds more than the reader's limit.
var ErrTooLarge = errors.New("too large")

// Read reads the regular file at path, at most limit bytes. A device such
// as /dev/zero or a FIFO is refused before anything is read: the open uses
// O_NONBLOCK, so a FIFO without a writer does not hang it, and the check
// is on the opened file (fstat), not on a name that could be swapped.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := fits(path, st, limit); err != nil {
		return nil, err
	}
	// The cap holds even if the file grows while it is read.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes this file may hold: %w", path, limit, ErrTooLarge)
	}
	return b, nil
}

// Check says whether path is a regular file of at most limit bytes, for a
// file another library will read (client-go reads kubeconfigs itself).
func Check(path string, limit int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return fits(path, st, limit)
}

// fits: st is a regular file of at most limit bytes.
func fits(path string, st fs.FileInfo, limit int64) error {
	if st.Mode().IsRegular() {
		if st.Size() > limit {
			return fmt.Errorf("%s: %d bytes, more than the %d this file may hold: %w", path, st.Size(), limit, ErrTooLarge)
		}
		return nil
	}
	var kind string
	switch m := st.Mode(); {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a block device"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	default:
		kind = "not a regular file"
	}
	return fmt.Errorf("%s is %s: %w; name a plain file", path, kind, ErrNotRegular)
}

// ReadToken reads a bearer token: a regular file of at most MaxTokenBytes,
// one line. Surrounding whitespace (an editor's trailing newline) is
// trimmed; an empty token, or one with spaces or control characters inside
// (which an HTTP header cannot carry), is refused.
func ReadToken(path string) (string, error) {
	b, err := Read(path, MaxTokenBytes)
	if err != nil {
		return "", err
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty: write the token into it", path)
	}
	if i := strings.IndexFunc(tok, func(r rune) bool { return r < '!' || r > '~' }); i >= 0 {
		return "", fmt.Errorf("token file %s: the token has a space, control or non-ASCII character at byte %d: a token is one word of printable ASCII", path, i)
	}
	return tok, nil
}
