#!/usr/bin/env bash
# make e2e-storage: the Kubernetes storage test suite (e2e.test v1.37.2,
# external driver, test-driver.yaml) against the chart's pods on the real
# node (test/e2e/node), in the same guest boot, as that bed's phase.
#
#   test/e2e/storage/run.sh [full|ci] [GO-TEST-FLAGS...]
#
# full (the default, make e2e-storage): the provisioning, volumes,
# multiVolume, subPath and volumeIO suites for every pattern they have, after
# no node scenario (-test.run '^$'). ci: the node scenarios, then a fixed
# subset (guest.sh) — what make test runs. GO-TEST-FLAGS go to the node
# bed's test binary (e.g. -test.run TestHelmInstall). See test/e2e/README.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
set_name=full
case ${1-} in
full | ci) set_name=$1; shift ;;
esac
t0=$SECONDS
echo "e2e-storage: e2e.test and agnhost (test/e2e/build-bins.sh --e2e-test)"
test/e2e/build-bins.sh --e2e-test
mkdir -p _output/e2e
GOWORK=off CGO_ENABLED=0 go build -o _output/e2e/storage-summary ./test/e2e/storage/summary
echo "e2e-storage: built in $((SECONDS - t0))s"
args=()
[[ $set_name == ci ]] || args+=(-test.run '^$')
# The node bed runs the phase after its scenarios (a path in the repository).
export E2E_NODE_PHASES="test/e2e/storage/guest.sh ${E2E_NODE_PHASES-}" E2E_STORAGE_SET=$set_name
export E2E_NODE_IMAGES_HOOK=$root/test/e2e/storage/build-images.sh
export UML_PASS_ENV="E2E_STORAGE_SET E2E_STORAGE_TIMEOUT E2E_STORAGE_DEADLINE ${UML_PASS_ENV-}"
# The full set takes hours under UML: the guest's limit must cover the
# node bed's start-up (up to 40 min) and the suite (guest.sh, 6 h at most).
# The ci set keeps node/run.sh's default.
if [[ $set_name == full ]]; then
	export E2E_TIMEOUT=${E2E_TIMEOUT:-25200}
fi
exec test/e2e/node/run.sh "${args[@]}" "$@"
