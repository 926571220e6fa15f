package hostfacts

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"podpath/internal/nsenter"
)

// A Docker host on the legacy iptables backend: FORWARD's policy drops
// Pod traffic, a rule rejects BGP, another drops VXLAN from one network
// only (the far end is unknown, so that drop is conditional). Read with
// getsockopt, in a namespace of the test's own.
func TestLegacyIptables(t *testing.T) {
	testIptables(t, "iptables-legacy", "ip (iptables-legacy)")
}

// The same rules through iptables-nft: nftables rules with x_tables
// matches (conntrack, multiport, comment) that the walk reads.
func TestIptablesNft(t *testing.T) {
	testIptables(t, "iptables-nft", "ip")
}

func testIptables(t *testing.T, tool, family string) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (a network namespace) and not -short")
	}
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("skipped: no %s (Debian's iptables package; scripts/deps.sh installs it)", tool)
	}
	name := fmt.Sprintf("pp-%s-%d", tool, os.Getpid())
	if err := exec.Command("ip", "netns", "add", name).Run(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	for _, rule := range []string{
		"-P FORWARD DROP",
		"-N DOCKER-USER", "-A DOCKER-USER -j RETURN",
		"-A FORWARD -j DOCKER-USER",
		"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
		"-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A INPUT -p udp --dport 4789 -s 10.1.0.0/16 -j DROP",
		"-A INPUT -p tcp -m multiport --dports 179,10250 -m comment --comment no-bgp -j REJECT",
	} {
		args := append([]string{"netns", "exec", name, tool, "-w"}, strings.Fields(rule)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", tool, rule, err, out)
		}
	}
	var fw Firewall
	if err := nsenter.Do(name, func() error { fw = readFirewall(testView); return nil }); err != nil {
		t.Fatal(err)
	}
	if fw.Error != "" {
		t.Errorf("firewall error: %s", fw.Error)
	}
	type want struct {
		chain, rule string
		needs       []string
		conditional bool
	}
	var got []want
	for _, d := range fw.Drops {
		if d.Family != family || d.Table != "filter" {
			t.Errorf("drop %+v: want %s's filter table (%s)", d, tool, family)
		}
		got = append(got, want{d.Chain, d.Rule, append(slices.Clone(d.Needs), d.Possible...), d.Conditional})
	}
	for _, w := range []want{
		{"INPUT", `ip saddr 10.1.0.0/16 udp dport 4789 drop`, []string{NeedVXLAN}, true},
		{"INPUT", `tcp dports 179,10250 comment "no-bgp" reject`, []string{NeedBGP}, false},
		{"FORWARD", "policy drop", []string{NeedICMPFragNeeded, NeedICMP, NeedPodTraffic, NeedDNS}, false},
	} {
		if !slices.ContainsFunc(got, func(g want) bool {
			return g.chain == w.chain && g.rule == w.rule && slices.Equal(g.needs, w.needs) && g.conditional == w.conditional
		}) {
			t.Errorf("drops %+v; want %+v among them", got, w)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d drops %+v; want exactly those 3", len(got), got)
	}
}
