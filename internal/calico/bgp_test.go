package calico

import (
	"net/netip"
	"testing"
)

func TestMeshPeerName(t *testing.T) {
	for in, want := range map[string]string{
		"172.17.8.102": "Mesh_172_17_8_102",
		"fd00::1":      "Mesh_fd00__1",
	} {
		if got := MeshPeerName(netip.MustParseAddr(in)); got != want {
			t.Errorf("MeshPeerName(%s) = %s; want %s", in, got, want)
		}
	}
}
