//go:build !agentonly

package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// wantUsageError checks the contract for bad input: exit 2 and one line on
// stderr that names the problem.
func wantUsageError(t *testing.T, want string, args ...string) {
	t.Helper()
	code, _, stderr := run(t, args...)
	if code != ExitNoRun {
		t.Errorf("podpath %s: exit %d; want %d", strings.Join(args, " "), code, ExitNoRun)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "podpath: ") || !strings.Contains(stderr, want) {
		t.Errorf("podpath %s: stderr %q; want one line 'podpath: …%s…'", strings.Join(args, " "), stderr, want)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "podpath ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

// Checked before anything needs root, so these hold for every user.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown_command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown_flag", []string{"lab", "up", "--nodez", "3"}, "unknown flag: --nodez"},
		{"negative_mtu", []string{"lab", "up", "--underlay-mtu", "-1500"}, "underlay MTU -1500: must be between 576 and 9216"},
		{"negative_pod_mtu", []string{"lab", "up", "--pod-mtu", "-1"}, "Pod MTU -1"},
		{"too_many_nodes", []string{"lab", "up", "--nodes", "1000"}, "nodes 1000: must be between 1 and 250"},
		{"zero_nodes", []string{"lab", "up", "--nodes", "0"}, "nodes 0: must be between 1 and 250"},
		{"unknown_fix_subcommand", []string{"fix", "foo"}, `unknown command "foo" for "podpath fix"`},
		{"unknown_lab_subcommand", []string{"lab", "foo"}, `unknown command "foo" for "podpath lab"`},
		{"unknown_fault_subcommand", []string{"lab", "fault", "foo"}, `unknown command "foo" for "podpath lab fault"`},
		{"preflight_bad_backend", []string{"preflight", "--backend", "foo"}, `--backend "foo": use vxlan, bird or none`},
		{"preflight_zero_timeout", []string{"preflight", "--timeout", "0"}, "--timeout 0s: must be more than 0"},
		{"fix_negative_rollout", []string{"fix", "mtu", "--rollout-timeout", "-5s"}, "--rollout-timeout -5s: must be more than 0"},
		{"plan_negative_underlay", []string{"plan", "--nodes", "3", "--underlay-mtu", "-1"}, "--underlay-mtu -1: must be between 576 and 65535"},
		{"plan_negative_nodes", []string{"plan", "--nodes", "-5"}, "--nodes -5: must be 1 or more"},
		{"plan_bad_backend", []string{"plan", "--nodes", "3", "--backend", "foo"}, `--backend "foo": use vxlan, bird or none`},
		{"plan_negative_calico_mtu", []string{"plan", "--nodes", "3", "--calico-mtu", "-1"}, "--calico-mtu -1: must be between 576 and 9000"},
		{"plan_bad_ipip", []string{"plan", "--nodes", "3", "--ipip-mode", "bogus"}, `--ipip-mode "bogus": use Always, CrossSubnet or Never`},
		{"doctor_zero_timeout", []string{"doctor", "--timeout", "0"}, "--timeout 0s: must be more than 0"},
		{"doctor_negative_timeout", []string{"doctor", "--timeout", "-5s"}, "--timeout -5s: must be more than 0"},
		{"perf_zero_timeout", []string{"perf", "--timeout", "0"}, "--timeout 0s: must be more than 0"},
		{"perf_streams_too_many", []string{"perf", "--streams", "17", "--throughput", "3s"}, "--streams 17: must be 1-16"},
		{"perf_streams_without_throughput", []string{"perf", "--streams", "4"}, "give --throughput too"},
		{"plan_bad_vxlan", []string{"plan", "--nodes", "3", "--vxlan-mode", "always"}, `--vxlan-mode "always": use Always, CrossSubnet or Never`},
		{"bad_backend", []string{"lab", "up", "--backend", "flannel"}, `backend "flannel": use vxlan, bgp or none`},
		{"bad_name", []string{"lab", "up", "--name", "My.Lab"}, `lab name "My.Lab"`},
		{"bad_override", []string{"lab", "up", "--mtu-override", "node3=9000"}, "use NODE:underlay=N"},
		{"bad_output", []string{"lab", "up", "-o", "yaml"}, `output format "yaml": use text or json`},
		{"unknown_fault", []string{"lab", "fault", "add", "mtu-broken=node3"}, `unknown fault "mtu-broken"`},
		{"negative_fault_mtu", []string{"lab", "fault", "add", "underlay-mtu=node3:-1"}, "underlay-mtu -1"},
		{"fault_without_args", []string{"lab", "fault", "add"}, "requires at least 1 arg"},
		{"extra_args", []string{"lab", "down", "now"}, `unknown command "now"`},
		{"agent_mode", []string{"agent", "--mode", "watch"}, `mode "watch": use api or monitor`},
		{"monitor_without_namespace", []string{"agent", "--mode", "monitor", "--selector", "app=x"}, "monitor mode needs --namespace and --selector"},
		{"monitor_bad_selector", []string{"agent", "--mode", "monitor", "--namespace", "p", "--selector", "app in (x"}, `--selector "app in (x"`},
		{"monitor_bad_rate", []string{"agent", "--mode", "monitor", "--namespace", "p", "--selector", "app=x", "--rate", "0"}, "positive --period and --rate"},
		{"monitor_bad_listen", []string{"agent", "--mode", "monitor", "--namespace", "p", "--selector", "app=x", "--listen", "7946"}, `--listen "7946"`},
		{"perf_interval_too_long", []string{"perf", "--interval", "20s"}, "--interval 20s: must be 1ms-10s"},
		{"perf_count_zero", []string{"perf", "--count", "0"}, "--count 0: must be 1-1000"},
		{"perf_series_beyond_timeout", []string{"perf", "--count", "50", "--interval", "1s"}, "--count 50 × --interval 1s takes 49s, more than --timeout 45s"},
		{"perf_negative_throughput", []string{"perf", "--throughput", "-1s"}, "--throughput -1s: must be 0 (none)"},
		{"monitor_outside_pod", []string{"agent", "--mode", "monitor", "--namespace", "p", "--selector", "app=x", "--service-account-dir", "/nonexistent"}, "give --kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUsageError(t, tt.want, tt.args...)
		})
	}
}

func TestHelpListsFaults(t *testing.T) {
	code, out, _ := run(t, "lab", "fault", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{"underlay-mtu=<node>:<bytes>", "route-missing=<node>:<block CIDR>", "delay=<node>:<ms>"} {
		if !strings.Contains(out, f) {
			t.Errorf("lab fault --help lacks %q:\n%s", f, out)
		}
	}
}

// --layers node,node is the node layer once, not every pair twice.
func TestLayersDeduplicated(t *testing.T) {
	dir := t.TempDir()
	inv := dir + "/inventory.yaml"
	body := "apiVersion: podpath/v1\nkind: Inventory\ntokenFile: token\nnodes:\n  - name: node1\n    address: 198.18.0.1\n"
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/token", []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		layers string
		want   int
	}{{"node,node", 1}, {"node, pod,node,pod", 2}} {
		f := sourceFlags{inventory: inv, layers: tt.layers, timeout: time.Second}
		src, layers, err := f.open(context.Background(), nil)
		if err != nil {
			t.Fatalf("--layers %s: %v", tt.layers, err)
		}
		src.Close()
		if len(layers) != tt.want {
			t.Errorf("--layers %s: %v; want %d layers", tt.layers, layers, tt.want)
		}
	}
}
