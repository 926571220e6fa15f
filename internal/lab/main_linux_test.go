package lab

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for podpath when the delay fault
// re-executes "itself" as the wire process.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "lab" && os.Args[2] == "wire" {
		if err := WireMain(context.Background(), os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
