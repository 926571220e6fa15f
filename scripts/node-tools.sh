#!/usr/bin/env bash
# Builds containerd, its runc shim and ctr from containerd's Go module
# (tools/containerd, a module of its own) into a cache, and prints the
# directory: the container runtime of the lab's real nodes. A cache built from
# the same tools/containerd/go.sum and Go version is reused, never rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../tools/containerd"
export PATH="$PATH:/usr/local/go/bin"
version=$(go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
key=$( (cat go.sum go.mod; go version) | sha256sum | cut -c1-16)
out="${PODPATH_CACHE:-$HOME/.cache/podpath}/containerd/$version-$key"
bins=(containerd containerd-shim-runc-v2 ctr)
missing=()
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$out"; exit 0; fi
echo "node-tools: building ${missing[*]} $version into $out (first time only: minutes)" >&2
mkdir -p "$out.tmp"
pkg=github.com/containerd/containerd/v2/version
ldflags="-s -w -X $pkg.Version=${version#v} -X $pkg.Revision=podpath"
# No btrfs, ZFS or devmapper snapshotters: the nodes use overlayfs, and these
# need cgo headers a fresh machine does not have.
CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_zfs no_devmapper" -ldflags "$ldflags" -o "$out.tmp/" $(printf './%s ' "${missing[@]}")
# Only what is missing is built; each binary joins the cache once it is whole.
mkdir -p "$out" && mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
echo "$out"
