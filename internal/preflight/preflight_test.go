package preflight

import (
	"strconv"
	"strings"
	"testing"
)

// preflight checks only the ports the planned cluster uses, towards the
// nodes that will serve them.
func TestPreflightPorts(t *testing.T) {
	var got []string
	for _, p := range NeededPorts("vxlan", false) {
		got = append(got, p.Proto+"/"+strconv.Itoa(p.Port))
	}
	if want := "tcp/6443 tcp/10250 tcp/2379 tcp/2380 udp/4789"; strings.Join(got, " ") != want {
		t.Errorf("vxlan without Typha: %v; want %s", got, want)
	}
	got = nil
	for _, p := range NeededPorts("bird", true) {
		got = append(got, p.Proto+"/"+strconv.Itoa(p.Port))
	}
	if want := "tcp/179 tcp/5473 tcp/6443 tcp/10250 tcp/2379 tcp/2380"; strings.Join(got, " ") != want {
		t.Errorf("bird with Typha: %v; want %s", got, want)
	}
	worker := Role{}
	if PortFor(6443, worker) || PortFor(2379, worker) || !PortFor(10250, worker) || !PortFor(6443, Role{ControlPlane: true}) {
		t.Error("a worker must be checked for the kubelet only; the API server's port only towards control-plane nodes")
	}
}
