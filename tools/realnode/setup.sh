#!/usr/bin/env bash
# Install what the real test node and the image build need from Debian, once.
#
#   tools/realnode/setup.sh          install what is missing (root, apt); quiet when all is there
#   tools/realnode/setup.sh --check  exit 0 when everything is installed
#
# containerd (1.6; kubelet 1.37 still falls back to its config for the cgroup
# driver when the runtime lacks the RuntimeConfig call, and drops that in 1.38),
# runc, the CNI plugins (bridge, host-local, portmap), iptables and conntrack
# for kube-proxy, debootstrap for tools/image/build.sh. Without root or apt
# it says so and exits 0: the tests that need a real node then skip with the
# reason (tests/integration/realnode.py: unavailable_reason).
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack debootstrap)
tools=(containerd runc /usr/lib/cni/bridge iptables conntrack debootstrap)

have_all() {
    local t
    for t in "${tools[@]}"; do
        if [[ "$t" == /* ]]; then [[ -x "$t" ]] || return 1; else command -v "$t" >/dev/null || return 1; fi
    done
}

case "${1:-}" in
    --check) have_all; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

have_all && exit 0
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "realnode: not root or no apt-get: install ${packages[*]} yourself; the real-node tests skip until then" >&2
    exit 0
fi
echo "realnode: apt-get install ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
