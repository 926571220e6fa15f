package kube

import "testing"

func TestCorefileDomain(t *testing.T) {
	for corefile, want := range map[string]string{
		// Kubespray's and kubeadm's
		".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n    }\n}\n": "cluster.local",
		"kubernetes in-addr.arpa corp.example. {":              "corp.example",
		"kubernetes {\n}":                                      "",
		"# kubernetes other.local\nforward . /etc/resolv.conf": "",
		"": "",
	} {
		if got := CorefileDomain(corefile); got != want {
			t.Errorf("CorefileDomain(%q) = %q; want %q", corefile, got, want)
		}
	}
}
