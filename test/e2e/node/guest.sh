#!/usr/bin/env bash
# Inside the UML guest (see run.sh, UML_NODE=1): run the real-node e2e test
# binary with the paths of the binaries and images, and keep the logs.
# Usage: guest.sh REPO_ROOT [GO-TEST-FLAGS...]
set -uo pipefail
root=$1; shift
# shellcheck source=hack/e2e-env.sh
source "$root/hack/e2e-env.sh"
nfs_csi::e2e_env "$root" e2e-node
# Further phases after the scenarios, in the same boot and cluster: the
# test binary runs each executable E2E_NODE_PHASES names (paths relative to
# E2E_ROOT) with KUBECONFIG and the E2E_NODE_* variables; see
# test/e2e/README.md, "Adding a phase". run.sh passes E2E_NODE_PHASES in.
export E2E_ROOT=$root E2E_NODE_PHASES=${E2E_NODE_PHASES-}
log=$UML_RESULTS_DIR/e2e-node.log
"$root/_output/e2e/e2e-node.test" -test.v -test.timeout 60m "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ]; then echo "RESULT e2e-node pass"; else echo "RESULT e2e-node fail (component logs: $E2E_LOG_DIR)"; fi
exit "$rc"
