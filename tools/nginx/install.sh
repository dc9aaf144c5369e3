#!/usr/bin/env bash
# nginx from Debian's packages: the peer reverse proxy in benchmarks/gateway_hop.py and
# benchmarks/streaming_overhead.py. Nothing of it runs as a service: the benchmarks start
# their own nginx with a generated config on free ports, and stop it.
#   tools/nginx/install.sh          install (root, or sudo) unless present
#   tools/nginx/install.sh --check  exit 0 when nginx is on PATH
set -euo pipefail
if command -v nginx >/dev/null 2>&1; then
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tools/nginx/install.sh: no apt-get here; install nginx with this system's package manager" >&2
    exit 1
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
# nginx-light where the release still has it (Debian 11), nginx (light by default since 12) otherwise.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx-light 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx
# The package starts a system nginx on port 80 where systemd runs; the benchmarks need none.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    $sudo systemctl stop nginx || true
fi
