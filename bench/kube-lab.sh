#!/usr/bin/env bash
# Times a Kubernetes lab (podpath lab up --kubernetes) and the doctor in
# cluster mode on it, phase by phase, and the memory each node's processes
# take. As root, from the checkout, after `make build`:
#   bench/kube-lab.sh [NODES...]      (default: 3 10)
# Prints one line per measurement; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
pp=bin/podpath
kubectl="$(scripts/kube-tools.sh)/kubectl"
scripts/node-tools.sh >/dev/null
stamp() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a - b}'; }
for n in "${@:-3 10}"; do
  name=bench$n
  $pp lab down --name "$name" >/dev/null
  t0=$(stamp); $pp lab up --name "$name" --kubernetes --nodes "$n" >/dev/null; t1=$(stamp)
  printf 'lab up, %2d nodes, to all Ready with calico-node: %s s\n' "$n" "$(since "$t1" "$t0")"
  export KUBECONFIG=/run/podpath/lab/$name/kubeconfig
  # Memory: resident set of each node's containerd, kubelet, kube-proxy and shims.
  for node in node1; do
    cg=$(ls -d /sys/fs/cgroup/memory/podpath.lab.$name.$node)
    total=0
    for comp in containerd kubelet kube-proxy; do
      pid=$(cat /run/podpath/lab/$name/$node/kube/$comp.pid)
      rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
      printf '  %s %s RSS %d MB\n' "$node" "$comp" $((rss / 1024))
      total=$((total + rss))
    done
    printf '  %s cgroup (all its processes, Pods included): %d MB\n' "$node" $(( $(cat "$cg/memory.usage_in_bytes") / 1048576 ))
  done
  dnsnode=$("$kubectl" -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[0].spec.nodeName}')
  for case in healthy kube-proxy dns seed; do
    case $case in
      kube-proxy) $pp lab fault add --name "$name" kube-proxy-stopped=node2 >/dev/null ;;
      dns) $pp lab fault clear --name "$name" >/dev/null; $pp lab fault add --name "$name" "dns-udp-dropped=$dnsnode" >/dev/null ;;
      seed) $pp lab fault clear --name "$name" >/dev/null; $pp lab fault add --name "$name" underlay-mtu=node3:1400 >/dev/null ;;
    esac
    log=$(mktemp)
    t0=$(stamp)
    $pp doctor 2>&1 >/dev/null | while IFS= read -r line; do printf '%s %s\n' "$(stamp)" "$line"; done >"$log" || true
    t1=$(stamp)
    at() { awk -v p="$1" 'index($0, p) {print $1; exit}' "$log"; }
    dep=$(at "deploying agents"); probe=$(at "probing"); svc=$(at "through"); dns=$(at "asking the cluster DNS")
    diag=$(at "diagnosing"); rm_=$(at "removing the agents")
    dns=${dns:-$diag}
    printf 'doctor %s, %2d nodes: %s s wall (deploy to agents ready %s s, probe %s s of which the Service checks %s s and the DNS checks %s s, diagnose %s s, cleanup %s s)\n' \
      "$case" "$n" "$(since "$t1" "$t0")" "$(since "$probe" "$dep")" "$(since "$diag" "$probe")" "$(since "$dns" "${svc:-$dns}")" "$(since "$diag" "$dns")" \
      "$(since "$rm_" "$diag")" "$(since "$t1" "$rm_")"
    rm -f "$log"
  done
  t0=$(stamp); $pp lab down --name "$name" >/dev/null; t1=$(stamp)
  printf 'lab down, %2d nodes: %s s\n' "$n" "$(since "$t1" "$t0")"
done
