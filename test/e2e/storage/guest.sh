#!/usr/bin/env bash
# Inside the UML guest, as a phase of the real-node bed (E2E_NODE_PHASES, run
# by test/e2e/node after its scenarios), while the control plane, the kubelet
# and the chart's pods run: the Kubernetes storage test suite (e2e.test v1.37.2,
# built by test/e2e/build-bins.sh --e2e-test) against nfs.csi.example.io,
# described by test-driver.yaml. Then a count of passed, failed and skipped
# per suite and test pattern (summary/, from the JUnit report).
#
# Reads E2E_STORAGE_SET (full | ci, see run.sh), and KUBECONFIG and E2E_ROOT
# (the repository), which the phase hook sets, and E2E_BIN_ROOT.
set -uo pipefail
root=${E2E_ROOT:?} set=${E2E_STORAGE_SET:-full}
here=$root/test/e2e/storage
kube=$(sed -n 's/^KUBE_VERSION=//p' "$root/test/e2e/build-bins.sh")
e2e=${E2E_BIN_ROOT:?}/e2e.test-$kube/e2e.test
out=$UML_RESULTS_DIR/e2e-storage
rm -rf "$out"
mkdir -p "$out"

# The suites the issue names, each for every pattern it has; the driver's
# name and the pattern are in every test's name.
suites='(provisioning|volumes|multiVolume|subPath|volumeIO)'
focus="External.Storage \[Driver: nfs\.csi\.example\.io\] \[Testpattern: [^]]*\] $suites "
# [Disruptive]: these stop the kubelet over SSH (e2essh), which this bed has
# no server for; scenario 5 (TestKubeletRestart) restarts the real kubelet.
# "any volume data source" deploys hello-populator and
# volume-data-source-validator (registry.k8s.io/sig-storage, from
# kubernetes-csi projects this bed does not build yet): its pods could never
# start here.
skip='\[Disruptive\]|provisioning should provision storage with any volume data source'
case $set in
full) ;;
ci)
	# A fixed subset that fits in make test (see test/e2e/README.md): one
	# test of each suite, Dynamic PV (default fs).
	focus="External.Storage \[Driver: nfs\.csi\.example\.io\] \[Testpattern: Dynamic PV \(default fs\)\] "
	focus+="(provisioning should provision storage with mount options"
	focus+="|volumes should store data"
	focus+="|volumeIO should write files of various sizes, verify size, validate content"
	focus+="|subPath should support existing directory"
	focus+=")( \\[|\$)" ;;
*) echo "e2e-storage: unknown set $set (full, ci)" >&2; exit 2 ;;
esac

# The suite's own limit (a Go duration), after which Ginkgo stops the running
# test, cleans up and still writes the report; or E2E_STORAGE_DEADLINE, a
# Unix time to stop by.
limit=${E2E_STORAGE_TIMEOUT:-6h}
if [[ -n ${E2E_STORAGE_DEADLINE:-} ]]; then limit=$((E2E_STORAGE_DEADLINE - $(date +%s)))s; fi

sed "s|REPO_ROOT|$root|" "$here/test-driver.yaml" >"$out/test-driver.yaml"
# Scenario 6 leaves its stand-in second Node (no kubelet, never Ready)
# registered; e2e.test would refuse a cluster with a NotReady node. Only the
# real node stays.
for n in $("$E2E_KUBECTL" get nodes -o name); do
	[[ $n == node/${E2E_NODE_NAME:?} ]] || "$E2E_KUBECTL" delete "$n" --wait=false
done
echo "e2e-storage: $e2e, set $set"
t0=$SECONDS
# -provider=skeleton: no cloud; -allowed-not-ready-nodes=0: the one node must
# be Ready; -e2e-verify-service-account: each test namespace's default
# ServiceAccount (kube-controller-manager makes it) before the test.
"$e2e" \
	-kubeconfig="$KUBECONFIG" \
	-kubectl-path="$E2E_KUBECTL" \
	-provider=skeleton \
	-storage.testdriver="$out/test-driver.yaml" \
	-allowed-not-ready-nodes=0 \
	-e2e-verify-service-account=true \
	-report-dir="$out" \
	-ginkgo.focus="$focus" \
	-ginkgo.skip="$skip" \
	-ginkgo.timeout="$limit" \
	-ginkgo.no-color \
	-ginkgo.v \
	>"$out/e2e.test.log" 2>&1
rc=$?
echo "e2e-storage: e2e.test exited $rc after $((SECONDS - t0))s (log: $out/e2e.test.log)"
grep -E '^(Ran |FAIL|PASS|SUCCESS|--- )' "$out/e2e.test.log" | tail -n 5
"$root/_output/e2e/storage-summary" -suites "${suites:1:-1}" "$out"/junit_*.xml | tee "$out/summary.txt"
exit "$rc"
