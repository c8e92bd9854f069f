#!/usr/bin/env bash
# Inside the UML guest (see run.sh): run the e2e test binary with the paths
# of the control-plane binaries, and keep the component logs.
# Usage: guest.sh REPO_ROOT [GO-TEST-FLAGS...]
set -uo pipefail
root=$1; shift
# shellcheck source=hack/e2e-env.sh
source "$root/hack/e2e-env.sh"
nfs_csi::e2e_env "$root" e2e
log=$UML_RESULTS_DIR/e2e.log
NFSCTL=$root/test/uml/nfsctl.sh "$root/_output/e2e/e2e.test" -test.v -test.timeout 45m "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ]; then echo "RESULT e2e pass"; else echo "RESULT e2e fail (component logs: $E2E_LOG_DIR)"; fi
exit "$rc"
