#!/usr/bin/env bash
# make bench: measure the driver against a real kernel nfsd in one UML run,
# print the table and write _output/bench.json. A benchmark, not a test: it
# fails only when it cannot measure, never because a target is missed.
# Arguments go to test/bench (see its -h), for example
#   hack/bench.sh -copy-mib 50 -stats-files 20000
# Guest memory: the snapshot rows hold three copies of their tree at once on
# the tmpfs export, and then on the XFS export's image in the guest's /tmp.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
hack/deps.sh
# shellcheck source=hack/tools.sh
source hack/tools.sh
nfs_csi::build_driver
mkdir -p _output
go build -o _output/bench ./test/bench
# shellcheck source=hack/uml-stage.sh
source hack/uml-stage.sh
nfs_csi::uml_stage "$root"
(cd "$UML_ROOT" && test/uml/run.sh --timeout 1800 --mem 4G -- _output/bench -driver "$UML_ROOT/bin/nfs-csi" -out "$UML_RESULTS_DIR/bench.json" "$@")
[ "$UML_RESULTS_DIR/bench.json" -ef _output/bench.json ] || cp "$UML_RESULTS_DIR/bench.json" _output/bench.json
echo "results: _output/bench.json"
