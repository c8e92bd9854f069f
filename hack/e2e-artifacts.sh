#!/usr/bin/env bash
# Sourced by test/e2e/run.sh and hack/demo.sh, which run the e2e bed
# (test/e2e/framework) inside user-mode Linux.
#
#   nfs_csi::e2e_artifacts ROOT NAME [BUILD-COMMAND...]
#
# builds on the host what such a run needs:
#   - etcd, the kube control plane and the CSI sidecars, from
#     test/e2e/build-bins.sh (cached; it says when the first, long build is due)
#   - bin/nfs-csi
#   - _output/e2e/chart.yaml: the chart rendered with test/e2e/values.yaml
#   - whatever BUILD-COMMAND builds (run in ROOT): the test binary, the demo
# then stages the tree for the guest (hack/uml-stage.sh: UML_ROOT,
# UML_RESULTS_DIR) and exports E2E_BIN_ROOT, the binary cache, adding it to
# UML_PASS_ENV; in the guest, hack/e2e-env.sh turns it into the E2E_* paths.
# NAME prefixes its messages; E2E_STAGE_NAME, when set, names the staging
# directory (hack/uml-stage.sh). Returns non-zero when a step fails. The caller
# runs nfs_csi::cleanup (hack/tools.sh) at exit, for helm's temporary home.
nfs_csi::e2e_artifacts() {
	local root=$1 name=$2 bins
	shift 2
	# shellcheck source=hack/tools.sh
	source "$root/hack/tools.sh" || return 1
	bins=$("$root/test/e2e/build-bins.sh" --print-dir) || return 1
	case "$bins" in
	/tmp | /tmp/* | /run | /run/*)
		echo "$name: the binary cache $bins is hidden inside the UML guest; set NFS_CSI_E2E_BIN to a directory outside /tmp and /run" >&2
		return 1 ;;
	esac

	echo "$name: control-plane binaries (test/e2e/build-bins.sh)"
	"$root/test/e2e/build-bins.sh" || return 1

	echo "$name: driver and chart render"
	nfs_csi::build_driver || return 1
	nfs_csi::helm || return 1
	mkdir -p "$root/_output/e2e" || return 1
	(cd "$root" && "$NFS_CSI_HELM" template nfs-csi charts/nfs-csi --namespace kube-system \
		--kube-version "$NFS_CSI_KUBE_VERSION" --values test/e2e/values.yaml >_output/e2e/chart.yaml) || return 1
	if (($#)); then
		echo "$name: $*"
		(cd "$root" && "$@") || return 1
	fi

	# shellcheck source=hack/uml-stage.sh
	source "$root/hack/uml-stage.sh" || return 1
	nfs_csi::uml_stage "$root" "${E2E_STAGE_NAME:-}" || return 1
	export E2E_BIN_ROOT=$bins
	export UML_PASS_ENV="E2E_BIN_ROOT ${UML_PASS_ENV-}"
}
