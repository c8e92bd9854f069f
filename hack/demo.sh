#!/usr/bin/env bash
# make demo: the driver in the Kubernetes flow, on the bed of the e2e tests
# (test/e2e/framework), inside user-mode Linux with a kernel NFS server: a
# real control plane (etcd, kube-apiserver, kube-controller-manager) with the
# chart's objects and the driver behind csi-provisioner and csi-attacher; a
# PVC goes Bound, a pod on a Node gets the volume attached and published,
# writes a file that shows on the export, and the claim is deleted again.
# About 2-3 minutes once test/e2e/build-bins.sh has cached the control plane;
# its first build takes about 35 minutes on 2 cores, once.
# Installs what it needs on a fresh Debian machine (root, Go installed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
hack/deps.sh
# shellcheck source=hack/tools.sh
source hack/tools.sh
trap nfs_csi::cleanup EXIT
# shellcheck source=hack/e2e-artifacts.sh
source hack/e2e-artifacts.sh
nfs_csi::e2e_artifacts "$root" demo go build -tags e2e -o _output/demo ./test/demo
echo "demo: built in ${SECONDS}s; booting user-mode Linux with a kernel NFS server (5-30 s)"
# Two guests on 2 cores make each other several times slower (seen here: the
# apiserver alone took over 120 s to be ready, against 45 s on an idle machine).
others=$(pgrep -a -x linux.uml | grep -o 'umid=[^ ]*' | sort -u | wc -l) || true
if ((others)); then
	echo "demo: $others other user-mode Linux guest(s) running on this machine: the demo will be slower, and the control plane may miss the bed's time limits" >&2
fi
cd "$UML_ROOT"
rc=0
test/uml/run.sh --mem 4G --timeout 600 -- test/demo/guest.sh "$UML_ROOT" || rc=$?
echo "demo: ${SECONDS}s in all"
exit "$rc"
