#!/usr/bin/env bash
# Builds CoreDNS from its Go module (tools/coredns, a module of its own with
# Kubespray's plugin set) into a cache, and prints the directory: the cluster
# DNS of the lab's real nodes. A cache built from the same tools/coredns/go.sum
# and Go version is reused, never rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../tools/coredns"
export PATH="$PATH:/usr/local/go/bin"
version=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
key=$( (cat go.sum go.mod; go version) | sha256sum | cut -c1-16)
out="${PODPATH_CACHE:-$HOME/.cache/podpath}/coredns/$version-$key"
if [ -x "$out/coredns" ]; then echo "$out"; exit 0; fi
echo "dns-tools: building coredns $version into $out (first time only: minutes)" >&2
mkdir -p "$out.tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/" ./coredns
# The binary joins the cache once it is whole.
mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
echo "$out"
