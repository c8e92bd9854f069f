#!/usr/bin/env bash
# make demo: boot a real kernel NFS server under user-mode Linux, start the
# driver, and walk the CSI lifecycle on the real export (about a minute).
# Installs what it needs on a fresh Debian machine (root, Go installed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
hack/deps.sh
# shellcheck source=hack/tools.sh
source hack/tools.sh
echo "demo: building the driver"
nfs_csi::build_driver
mkdir -p _output
go build -o _output/demo ./test/demo
echo "demo: booting user-mode Linux with a kernel NFS server (5-30 s)"
# shellcheck source=hack/uml-stage.sh
source hack/uml-stage.sh
nfs_csi::uml_stage "$root"
cd "$UML_ROOT"
test/uml/run.sh --timeout 300 -- _output/demo -driver "$UML_ROOT/bin/nfs-csi"
