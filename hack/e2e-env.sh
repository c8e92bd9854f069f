#!/usr/bin/env bash
# Sourced inside the UML guest by test/e2e/guest.sh and test/demo/guest.sh.
#
#   nfs_csi::e2e_env ROOT NAME
#
# exports what the e2e bed (test/e2e/framework) reads: the paths of the
# binaries that test/e2e/build-bins.sh cached under E2E_BIN_ROOT (passed in by
# nfs_csi::e2e_artifacts), the driver and the rendered chart under ROOT,
# E2E_DIR=/tmp/NAME for scratch and E2E_LOG_DIR=$UML_RESULTS_DIR/NAME-logs
# (emptied) for the component logs.
nfs_csi::e2e_env() {
	local root=$1 name=$2 B kube snap
	B=${E2E_BIN_ROOT:?E2E_BIN_ROOT is not set; start this through nfs_csi::e2e_artifacts}
	kube=$(nfs_csi::e2e_version "$root" KUBE_VERSION)
	export E2E_ETCD=$B/etcd-$(nfs_csi::e2e_version "$root" ETCD_VERSION)/etcd
	export E2E_KUBE_APISERVER=$B/kube-apiserver-$kube/kube-apiserver
	export E2E_KUBE_CONTROLLER_MANAGER=$B/kube-controller-manager-$kube/kube-controller-manager
	export E2E_KUBECTL=$B/kubectl-$kube/kubectl
	export E2E_KUBE_SCHEDULER=$B/kube-scheduler-$kube/kube-scheduler
	export E2E_CSI_PROVISIONER=$B/csi-provisioner-$(nfs_csi::e2e_version "$root" PROVISIONER_VERSION)/csi-provisioner
	export E2E_CSI_ATTACHER=$B/csi-attacher-$(nfs_csi::e2e_version "$root" ATTACHER_VERSION)/csi-attacher
	export E2E_CSI_RESIZER=$B/csi-resizer-$(nfs_csi::e2e_version "$root" RESIZER_VERSION)/csi-resizer
	# the quota agent's unit file, whose ExecStart the bed runs (framework/quota.go)
	export E2E_AGENT_UNIT=$root/deploy/agent/nfs-csi-agent.service
	export E2E_KUBELET=$B/kubelet-$kube/kubelet
	snap=$(nfs_csi::e2e_version "$root" SNAPSHOTTER_VERSION)
	export E2E_CSI_SNAPSHOTTER=$B/csi-snapshotter-$snap/csi-snapshotter
	export E2E_SNAPSHOT_CONTROLLER=$B/snapshot-controller-$snap/snapshot-controller
	export E2E_SNAPSHOT_CRDS=$B/snapshot-crds-$snap
	# the real node's (test/e2e/node): what build-images.sh listed, the chart
	export E2E_IMAGES=$root/_output/e2e/images.txt
	export E2E_CHART_DIR=$root/charts/nfs-csi
	export E2E_DRIVER=$root/bin/nfs-csi
	export E2E_CHART=$root/_output/e2e/chart.yaml
	export E2E_DIR=/tmp/$name
	export E2E_LOG_DIR=$UML_RESULTS_DIR/$name-logs
	rm -rf "$E2E_LOG_DIR"
	mkdir -p "$E2E_LOG_DIR"
}

# nfs_csi::e2e_version ROOT VAR: a pinned version from build-bins.sh.
nfs_csi::e2e_version() {
	sed -n "s/^$2=//p" "$1/test/e2e/build-bins.sh"
}
