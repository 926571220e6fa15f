#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and the
# lab nodes' kubelet and kube-proxy from their Go modules (tools/kube, a module of its own so podpath's go.mod stays
# clean) into a cache, and prints the directory. A cache built from the same
# tools/kube/go.sum is reused: nothing is rebuilt when it is good.
set -euo pipefail
cd "$(dirname "$0")/../tools/kube"
export PATH="$PATH:/usr/local/go/bin"
version=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
key=$( (cat go.sum go.mod; go version) | sha256sum | cut -c1-16)
out="${PODPATH_CACHE:-$HOME/.cache/podpath}/kube/$version-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$out"; exit 0; fi
echo "kube-tools: building ${missing[*]} $version into $out (first time only: minutes)" >&2
mkdir -p "$out.tmp"
minor=$(echo "$version" | cut -d. -f2)
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" $(printf './%s ' "${missing[@]}")
# Only what is missing is built; each binary joins the cache once it is whole.
mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
echo "$out"
