#!/usr/bin/env bash
# Times `podpath lab up` and `lab down` for a few sizes; prints the median of RUNS runs.
# Usage (root): bench/labup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=bin/podpath
[ -x "$bin" ] || make --no-print-directory build >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-28s %10s %10s\n' lab "up (s)" "down (s)"
for spec in "3 vxlan flat" "50 vxlan flat" "50 vxlan routed" "50 bgp flat"; do
  read -r nodes backend topo <<<"$spec"
  ups=() downs=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s.%N)
    "$bin" lab up --name bench --nodes "$nodes" --backend "$backend" --topology "$topo" >/dev/null
    t1=$(date +%s.%N)
    "$bin" lab down --name bench >/dev/null
    t2=$(date +%s.%N)
    ups+=("$(awk "BEGIN {print $t1 - $t0}")") downs+=("$(awk "BEGIN {print $t2 - $t1}")")
    sleep 1 # let the kernel finish freeing the last lab's namespaces
  done
  printf '%-28s %10.2f %10.2f\n' "$nodes nodes, $backend, $topo" \
    "$(printf '%s\n' "${ups[@]}" | median)" "$(printf '%s\n' "${downs[@]}" | median)"
done
