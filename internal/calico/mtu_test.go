package calico

import "testing"

// Calico's documented Pod MTUs for a 1500-byte network.
func TestOverheadsGiveCalicosDocumentedMTUs(t *testing.T) {
	for _, tc := range []struct {
		backend string
		v4, v6  int
	}{
		{"vxlan", 1450, 1430}, {"ipip", 1480, 1500}, {"wireguard", 1440, 1420}, {"bgp", 1500, 1500}, {"none", 1500, 1500},
	} {
		if got := 1500 - Overhead(tc.backend); got != tc.v4 {
			t.Errorf("%s over IPv4: %d; want %d", tc.backend, got, tc.v4)
		}
		if got := 1500 - OverheadIPv6(tc.backend); got != tc.v6 {
			t.Errorf("%s over IPv6: %d; want %d", tc.backend, got, tc.v6)
		}
	}
}

func TestCheckMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu  int
		ipv6 bool
		ok   bool
	}{
		{576, false, true}, {575, false, false}, {9000, false, true}, {9001, false, false},
		{1279, true, false}, {1280, true, true}, {-1, false, false},
	} {
		if err := CheckMTU(tc.mtu, tc.ipv6); (err == nil) != tc.ok {
			t.Errorf("CheckMTU(%d, ipv6=%v) = %v", tc.mtu, tc.ipv6, err)
		}
	}
}
