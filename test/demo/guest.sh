#!/usr/bin/env bash
# Inside the UML guest (see hack/demo.sh): the demo program, with the paths
# of the e2e bed that hack/e2e-env.sh sets, as for the e2e tests.
# Usage: guest.sh REPO_ROOT
set -euo pipefail
root=$1
# shellcheck source=hack/e2e-env.sh
source "$root/hack/e2e-env.sh"
nfs_csi::e2e_env "$root" demo
exec "$root/_output/demo"
