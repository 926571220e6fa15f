package kubespray

import (
	"bytes"
	"errors"
	"fmt"

	"podpath/internal/safefile"
)

// MaxFileBytes caps every file Load reads. Kubespray's largest defaults file
// is under 40 KiB and a thousand-node inventory is a few hundred KiB: a file
// past 4 MiB is something else (a log, an image) that was put in the wrong place.
const MaxFileBytes = 4 << 20

// vaultHeader starts a file encrypted with ansible-vault; podpath has no key
// and must not ask for one, so such files are noted and skipped.
var vaultHeader = []byte("$ANSIBLE_VAULT;")

// readCapped reads path, refusing anything over MaxFileBytes, and what is
// no regular file (a FIFO left in group_vars/ would hang the read).
func readCapped(path string) ([]byte, error) {
	data, err := safefile.Read(path, MaxFileBytes)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, &Error{File: path, Msg: fmt.Sprintf("more than %d MiB, too large for an inventory file", MaxFileBytes>>20),
			Hint: "move it out of the inventory directory"}
	}
	if err != nil {
		return nil, fmt.Errorf("read Kubespray inventory file: %w", err)
	}
	// A UTF-8 byte order mark from a Windows editor is not part of the first line.
	return bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), nil
}

func isVault(data []byte) bool { return bytes.HasPrefix(data, vaultHeader) }
