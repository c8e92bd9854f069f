#!/usr/bin/env bash
# make e2e-node: the chart's own pods on a real node. Like test/e2e/run.sh,
# plus the images (test/e2e/build-images.sh: the driver from the Dockerfile
# with podman, the sidecars and a pause image, cached) and a UML guest set up
# for containerd and a kubelet (UML_NODE=1). See test/e2e/README.md.
#
#   test/e2e/node/run.sh [GO-TEST-FLAGS...]    e.g. -test.run TestHelmInstall
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
hack/deps.sh node
# shellcheck source=hack/tools.sh
source hack/tools.sh
trap nfs_csi::cleanup EXIT

# shellcheck source=hack/e2e-artifacts.sh
source hack/e2e-artifacts.sh
# A staging directory of its own (CI's checkout is under /tmp), so that a
# make e2e of the same checkout cannot replace the tree under it.
E2E_STAGE_NAME=${E2E_STAGE_NAME-e2e-node} nfs_csi::e2e_artifacts "$root" e2e-node go test -c -tags e2e -o _output/e2e/e2e-node.test ./test/e2e/node
echo "e2e-node: images (test/e2e/build-images.sh)"
images=${NFS_CSI_IMAGES:-$HOME/.cache/nfs-csi/images}
case "$images" in
/tmp | /tmp/* | /run | /run/*)
	echo "e2e-node: the image cache $images is hidden inside the UML guest; set NFS_CSI_IMAGES to a directory outside /tmp and /run" >&2
	exit 1 ;;
esac
t0=$SECONDS
"$root/test/e2e/build-images.sh" "$UML_ROOT/_output/e2e/images.txt"
# A phase's own images (test/e2e/storage): a command that appends to the list.
if [[ -n ${E2E_NODE_IMAGES_HOOK:-} ]]; then "$E2E_NODE_IMAGES_HOOK" "$UML_ROOT/_output/e2e/images.txt"; fi
echo "e2e-node: images ready in $((SECONDS - t0))s"
export E2E_HELM=$NFS_CSI_HELM UML_NODE=1
export UML_PASS_ENV="E2E_HELM E2E_NODE_PHASES $UML_PASS_ENV"
cd "$UML_ROOT"
test/uml/run.sh --mem 4G --timeout "${E2E_TIMEOUT:-4800}" -- test/e2e/node/guest.sh "$UML_ROOT" "$@"
