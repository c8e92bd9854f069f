#!/usr/bin/env bash
# Inside the UML guest (see run.sh): run the e2e test binary with the paths
# of the control-plane binaries, and keep the component logs.
# Usage: guest.sh REPO_ROOT [GO-TEST-FLAGS...]
set -uo pipefail
root=$1; shift
versions() { sed -n "s/^$1=//p" "$root/test/e2e/build-bins.sh"; }
kube=$(versions KUBE_VERSION)
B=$E2E_BIN_ROOT
export E2E_ETCD=$B/etcd-$(versions ETCD_VERSION)/etcd
export E2E_KUBE_APISERVER=$B/kube-apiserver-$kube/kube-apiserver
export E2E_KUBE_CONTROLLER_MANAGER=$B/kube-controller-manager-$kube/kube-controller-manager
export E2E_KUBECTL=$B/kubectl-$kube/kubectl
export E2E_CSI_PROVISIONER=$B/csi-provisioner-$(versions PROVISIONER_VERSION)/csi-provisioner
export E2E_CSI_ATTACHER=$B/csi-attacher-$(versions ATTACHER_VERSION)/csi-attacher
export E2E_DRIVER=$root/bin/nfs-csi
export E2E_CHART=$root/_output/e2e/chart.yaml
export E2E_DIR=/tmp/e2e
export E2E_LOG_DIR=$UML_RESULTS_DIR/e2e-logs
rm -rf "$E2E_LOG_DIR"
mkdir -p "$E2E_LOG_DIR"
log=$UML_RESULTS_DIR/e2e.log
NFSCTL=$root/test/uml/nfsctl.sh "$root/_output/e2e/e2e.test" -test.v -test.timeout 25m "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ]; then echo "RESULT e2e pass"; else echo "RESULT e2e fail (component logs: $E2E_LOG_DIR)"; fi
exit "$rc"
