//go:build !agentonly

// Package e2e holds podpath's end-to-end tests: the commands run as a
// user runs them (cli.Run in process, or the built binary) against the
// namespace lab, a real control plane and real nodes. They need root and
// skip without it.
package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"podpath/internal/cli"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// wantUsageError checks the contract for bad input: exit 2 and one line on
// stderr that names the problem.
func wantUsageError(t *testing.T, want string, args ...string) {
	t.Helper()
	code, _, stderr := run(t, args...)
	if code != cli.ExitNoRun {
		t.Errorf("podpath %s: exit %d; want %d", strings.Join(args, " "), code, cli.ExitNoRun)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "podpath: ") || !strings.Contains(stderr, want) {
		t.Errorf("podpath %s: stderr %q; want one line 'podpath: …%s…'", strings.Join(args, " "), stderr, want)
	}
}
