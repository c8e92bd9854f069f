#!/usr/bin/env bash
# Lints charts/nfs-csi with helm (pinned version, installed by hack/tools.sh)
# in strict mode, with the default values and with ci/full-values.yaml, which
# sets every value.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/tools.sh
trap nfs_csi::cleanup EXIT
nfs_csi::helm
helm=$NFS_CSI_HELM
rc=0
for values in "" charts/nfs-csi/ci/full-values.yaml; do
  echo "helm-lint: ${values:-default values}" >&2
  "$helm" lint --strict charts/nfs-csi --kube-version "$NFS_CSI_KUBE_VERSION" ${values:+--values "$values"} || rc=1
done
exit $rc
