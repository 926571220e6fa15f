//go:build !unix

package agent

// openFileLimit: no such limit to read here; MaxConns bounds connections.
func openFileLimit() (uint64, bool) { return 0, false }
