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

# shellcheck source=hack/e2e-artifacts.sh
source hack/e2e-artifacts.sh
nfs_csi::e2e_artifacts "$root" e2e go test -c -tags e2e -o _output/e2e/e2e.test ./test/e2e
cd "$UML_ROOT"
test/uml/run.sh --mem 4G --timeout "${E2E_TIMEOUT:-3000}" -- test/e2e/guest.sh "$UML_ROOT" "$@"
