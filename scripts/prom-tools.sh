#!/usr/bin/env bash
# Builds Prometheus and promtool from their Go module (tools/prometheus, a module of its own)
# into a cache, and prints the directory: the chart's rule tests and the live alert test run
# them. A cache built from the same tools/prometheus/go.sum and Go version is reused, never
# rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../tools/prometheus"
export PATH="$PATH:/usr/local/go/bin"
version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
key=$( (cat go.sum go.mod; go version) | sha256sum | cut -c1-16)
out="${PODPATH_CACHE:-$HOME/.cache/podpath}/prometheus/$version-$key"
if [ -x "$out/promtool" ] && [ -x "$out/prometheus" ]; then echo "$out"; exit 0; fi
echo "prom-tools: building prometheus and promtool $version into $out (first time only: minutes)" >&2
mkdir -p "$out.tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/" \
	github.com/prometheus/prometheus/cmd/promtool github.com/prometheus/prometheus/cmd/prometheus
# The binaries join the cache once whole.
mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
echo "$out"
