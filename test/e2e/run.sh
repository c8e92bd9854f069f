#!/usr/bin/env bash
# make e2e: the driver on a real Kubernetes 1.37 control plane, with the real
# csi-provisioner and csi-attacher, against the kernel NFS server in a
# user-mode-Linux guest. Builds (once, cached) the control plane, renders the
# chart, builds the driver and the test binary, then runs every scenario in
# one UML boot. See test/e2e/README.md.
#
#   test/e2e/run.sh [GO-TEST-FLAGS...]    e.g. -test.run TestAttach
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
hack/deps.sh
# shellcheck source=hack/tools.sh
source hack/tools.sh
trap nfs_csi::cleanup EXIT

echo "e2e: control-plane binaries (cached; the first build takes about 35 minutes)"
test/e2e/build-bins.sh
bins=$(test/e2e/build-bins.sh --print-dir)

echo "e2e: driver, chart render and test binary"
nfs_csi::build_driver
nfs_csi::helm
mkdir -p _output/e2e
"$NFS_CSI_HELM" template nfs-csi charts/nfs-csi --namespace kube-system \
	--kube-version "$NFS_CSI_KUBE_VERSION" --values test/e2e/values.yaml >_output/e2e/chart.yaml
go test -c -tags e2e -o _output/e2e/e2e.test ./test/e2e

# shellcheck source=hack/uml-stage.sh
source hack/uml-stage.sh
nfs_csi::uml_stage "$root"
case "$bins" in
/tmp | /tmp/* | /run | /run/*)
	echo "e2e: the binary cache $bins is hidden inside the UML guest; set NFS_CSI_E2E_BIN to a directory outside /tmp and /run" >&2
	exit 1 ;;
esac
export E2E_BIN_ROOT=$bins
export UML_PASS_ENV="E2E_BIN_ROOT ${UML_PASS_ENV-}"
cd "$UML_ROOT"
test/uml/run.sh --mem 4G --timeout "${E2E_TIMEOUT:-1800}" -- test/e2e/guest.sh "$UML_ROOT" "$@"
