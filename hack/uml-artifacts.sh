#!/usr/bin/env bash
# Builds what a UML run executes, on the host (compiling inside UML would be
# slow): the driver, the integration test binary and the pinned csi-sanity.
# Prints nothing; the paths are fixed: bin/nfs-csi, _output/integration.test,
# and $CSI_SANITY (exported by sourcing this file).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/tools.sh
source "$root/hack/tools.sh"
CSI_SANITY_VERSION=v5.6.0
CSI_SANITY=$NFS_CSI_TOOLS/csi-sanity-$CSI_SANITY_VERSION/csi-sanity
nfs_csi::go_install "$(dirname "$CSI_SANITY")" "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION"
nfs_csi::build_driver
(cd "$root" && mkdir -p _output && go test -c -tags uml -o _output/integration.test ./test/integration)
export CSI_SANITY
