#!/usr/bin/env bash
# Installs what podpath's build, demo and tests need on a Debian machine.
# Idempotent: installs only what is missing, so a second run is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

# command the project runs : Debian package that provides it
tools=(
  ip:iproute2 tc:iproute2 bridge:iproute2
  nft:nftables
  bird:bird2 birdc:bird2
  iperf3:iperf3
  ping:iputils-ping tracepath:iputils-tracepath
  setpriv:util-linux pgrep:procps
  curl:curl
  iptables-legacy:iptables iptables-nft:iptables   # the firewall readers are tested against both backends
  chromium:chromium   # headless: the HTML report test opens the page and screenshots it
  runc:runc           # the lab's real nodes: containerd starts every container with it
)
missing=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
# The lab's busybox image is Debian's static busybox: a dynamic one would not
# run in an image without libc.
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root to install them; tests that need them skip)" >&2
  else
    echo "deps: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The lab runs one BIRD per node namespace; a system-wide BIRD started by
    # the package would only sit on the host's routing table.
    if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now bird.service >/dev/null 2>&1 || true
    fi
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is not on PATH: install Go 1.26 or newer (e.g. to /usr/local/go) and add its bin/ to PATH" >&2
  exit 1
fi
go mod download
