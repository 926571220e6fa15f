package diagnose

import (
	"fmt"
	"strings"
	"testing"

	"podpath/internal/model"
)

// dualOf is ev's IPv6 pass on the same nodes and facts: the nodes' IPv6
// addresses and the pairs again, as IPv6's.
func dualOf(ev Evidence) Evidence {
	six := ev
	six.Family = model.FamilyIPv6
	six.Addresses = map[string]string{}
	for i, n := range ev.Nodes {
		six.Addresses[n] = fmt.Sprintf("fd00::%d", i+1)
	}
	ps := ev.Pairs.Slice()
	out := make([]model.Pair, len(ps))
	for i, p := range ps {
		p.Family = model.FamilyIPv6
		if p.Layer == model.LayerPod { // the Pods at the IPv6 tunnel's MTU, as Calico sets it
			p.PathMTU, p.IfaceMTU = 1430, 1430
		}
		out[i] = p
	}
	six.Pairs = model.PairsOf(out)
	return six
}

func TestWithIPv6(t *testing.T) {
	// Healthy on both: nothing.
	h := healthy(3)
	if fs := WithIPv6(Diagnose(h), Diagnose(dualOf(h))); len(fs) != 0 {
		t.Errorf("healthy dual-stack: %v", fs)
	}

	// The seed's fault on node3's underlay (1400): IPv4 Pods carry 1350,
	// IPv6 Pods (VXLAN over IPv6: 70 bytes) 1330.
	v4 := healthy(3)
	each(&v4, with("node3"), func(p *model.Pair) {
		p.PathMTU, p.PathMTULimit = p.IfaceMTU-100, "silent"
	})
	v6 := dualOf(healthy(3))
	each(&v6, with("node3"), func(p *model.Pair) {
		p.PathMTU, p.PathMTULimit = 1400, "silent"
		if p.Layer == model.LayerPod {
			p.PathMTU = 1330
		}
	})
	fs := WithIPv6(Diagnose(v4), Diagnose(v6))
	byFamily := map[string]model.Finding{}
	for _, f := range fs {
		if f.ID == MTUBlackhole {
			byFamily[f.Family] = f
		}
	}
	first, six := byFamily[""], byFamily[model.FamilyIPv6]
	if first.Remedy == nil || six.Remedy == nil || first.Remedy.MTU != 1350 || six.Remedy.MTU != 1330 {
		t.Fatalf("mtu-blackhole by family %+v; want IPv4's remedy 1350 and IPv6's 1330", byFamily)
	}
	if !strings.HasSuffix(six.Title, "(IPv6)") || six.Pairs[0].Family != model.FamilyIPv6 {
		t.Errorf("IPv6 finding %q, pairs %+v: want it marked IPv6", six.Title, six.Pairs)
	}
	cmds := strings.Join(first.Remedy.Commands, "\n")
	if !strings.Contains(first.Remedy.Summary, "IPv6 paths need 1330") || !strings.Contains(cmds, "--mtu 1330") || strings.Contains(cmds, "1350") {
		t.Errorf("IPv4 remedy: %s\n%s\nwant the one Pod MTU both families need, 1330", first.Remedy.Summary, cmds)
	}

	// IPv4 forwarding off on node2: a fact both passes read, IPv6's own
	// sysctl unknown; said once, as IPv4's.
	off := healthy(3)
	off.Facts["node2"].Sysctls.IPv4Forward = iptr(0)
	each(&off, podWith("node2"), cutPair)
	fs = WithIPv6(Diagnose(off), Diagnose(dualOf(healthy3With(off))))
	if len(fs) != 1 || fs[0].ID != IPForwardDisabled || fs[0].Family != "" {
		t.Errorf("findings %v; want ip-forward-disabled once, IPv4's", familyIDs(fs))
	}
	// IPv6 forwarding off instead: IPv6's alone.
	off6 := dualOf(healthy(3))
	off6.Facts["node2"] = cloneFacts(off6.Facts["node2"])
	off6.Facts["node2"].Sysctls.IPv6Forwarding = iptr(0)
	each(&off6, podWith("node2"), cutPair)
	fs = WithIPv6(Diagnose(healthy(3)), Diagnose(off6))
	if len(fs) != 1 || fs[0].ID != IPForwardDisabled || fs[0].Family != model.FamilyIPv6 || !strings.Contains(fs[0].Evidence[0], "net.ipv6.conf.all.forwarding = 0") {
		t.Errorf("findings %v; want ip-forward-disabled, IPv6's", fs)
	}
}

// healthy3With is a healthy three-node run with ev's facts: the IPv6 pass
// of a cluster whose IPv4 forwarding alone is off.
func healthy3With(ev Evidence) Evidence {
	h := healthy(3)
	h.Facts = ev.Facts
	return h
}

func cloneFacts(f *model.Facts) *model.Facts {
	c := *f
	return &c
}

func familyIDs(fs []model.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+"/"+f.Family)
	}
	return out
}
