package calico

import (
	"net/netip"
	"strings"
)

// MeshPeerName is the name calico-node gives the BIRD protocol of a
// node-to-node mesh peer: Mesh_ and the address with . or : as _.
func MeshPeerName(a netip.Addr) string {
	return "Mesh_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}
