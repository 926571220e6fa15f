// Package version holds the build's version, stamped by the linker.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set with -ldflags "-X podpath/internal/version.Version=…".
var (
	Version = "dev"
	Commit  = ""
)

// String is the one-line version report printed by `podpath version`.
func String() string {
	commit := Commit
	if commit == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					commit = s.Value[:12]
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("podpath %s (commit %s, %s, %s/%s)", Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Image is the agent image of this build: podpath/podpath tagged with the
// version ("latest" for a development build).
func Image() string {
	tag := Version
	if tag == "" || tag == "dev" {
		tag = "latest"
	}
	return "podpath/podpath:" + tag
}
