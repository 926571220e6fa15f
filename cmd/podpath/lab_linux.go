//go:build !agentonly

package main

import "podpath/internal/lab/cni"

// The lab's real nodes call this binary, installed in their CNI bin
// directory as "calico", to wire each Pod sandbox.
func init() { programs[cni.ProgramName] = cni.Main }
