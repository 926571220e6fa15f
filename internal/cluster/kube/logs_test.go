package kube

import (
	"slices"
	"strings"
	"testing"
)

// Real calico-node log lines: the errors that explain cross-node trouble
// are kept, the noise is not, and at most LogLinesPerNode come back.
func TestMatchErrors(t *testing.T) {
	logs := strings.Join([]string{
		`2025-01-10 08:00:01.123 [INFO][1] felix/int_dataplane.go 1234: Received *proto.HostMetadataUpdate update`,
		`2025-01-10 08:00:02.001 [WARNING][1] startup/startup.go 456: Failed to auto-detect host MTU - no interfaces matched the MTU interface pattern`,
		`2025-01-10 08:00:03.500 [INFO][66] felix/health.go 200: Health of component changed name="InternalDataplaneMainLoop" newReport="live,ready"`,
		`2025-01-10 08:00:04.000 [ERROR][1] startup/startup.go 789: Unable to auto-detect an IPv4 address: no valid IPv4 addresses found on the host interfaces`,
		`bird: Mesh_198_18_0_3: Socket error: Connection refused`,
		`calico/node is not ready: BIRD is not ready: BGP not established with 198.18.0.3`,
	}, "\n")
	got := matchErrors([]byte(logs))
	want := []string{
		`2025-01-10 08:00:02.001 [WARNING][1] startup/startup.go 456: Failed to auto-detect host MTU - no interfaces matched the MTU interface pattern`,
		`2025-01-10 08:00:04.000 [ERROR][1] startup/startup.go 789: Unable to auto-detect an IPv4 address: no valid IPv4 addresses found on the host interfaces`,
		`bird: Mesh_198_18_0_3: Socket error: Connection refused`,
		`calico/node is not ready: BIRD is not ready: BGP not established with 198.18.0.3`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("matched:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	many := strings.Repeat("[ERROR][1] x\n", 20)
	if n := len(matchErrors([]byte(many))); n != LogLinesPerNode {
		t.Errorf("%d lines kept of 20; want %d", n, LogLinesPerNode)
	}
}
