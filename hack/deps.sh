#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benchmark need,
# when any is missing. Idempotent; needs root on a machine without them.
set -euo pipefail
#
#   hack/deps.sh        what every test needs
#   hack/deps.sh node   also the real node of test/e2e/node: podman and
#                       mmdebstrap (images), containerd, runc, the CNI
#                       plugins, iptables, a static busybox (test pods)
pkgs=(user-mode-linux nfs-kernel-server nfs-common rpcbind kmod iproute2 procps xfsprogs)
[ "${1-}" = node ] && pkgs+=(podman mmdebstrap containerd runc containernetworking-plugins iptables busybox-static)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]} with apt-get" >&2
[ "$(id -u)" = 0 ] || { echo "deps: not root; run: apt-get install -y ${missing[*]}" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >&2
