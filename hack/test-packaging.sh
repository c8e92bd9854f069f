#!/usr/bin/env bash
# Packaging tests: the Helm chart, the deploy/ manifests, the Dockerfile and
# the six-architecture build. Called by hack/test.sh (make test); runs alone
# too. Needs only Go (and root for apt-get, when qemu-user-static is missing).
#
#   hack/test-packaging.sh            every check
#   hack/test-packaging.sh --no-build skip build-all and the qemu runs
#
# What it checks: everything about the chart, deploy/ and the Dockerfile is a
# Go test in test/packaging (helm lint and helm template with the Helm SDK,
# strict decoding into k8s.io/api types, deploy/ and kustomize, the schema's
# messages, the docs, structural facts, the Dockerfile); here: that module's
# go vet and go test, make build-all, and the riscv64 and arm64 (and other)
# binaries printing --version with the right arch under qemu-user.
# Closes with "N passed, M failed" and exits non-zero on any failure.
#
# Hook for a real kube-apiserver test (not done here): the rendered manifests
# stay in $NFS_CSI_RENDER_DIR (default _output/packaging/) after the run:
#   default.yaml   the chart with default values (namespace kube-system)
#   full.yaml      the chart with charts/nfs-csi/ci/full-values.yaml
#   deploy.yaml    what `kubectl apply -k deploy/` applies (kustomize output)
# and if NFS_CSI_APISERVER_CHECK is set, it is run as a command (bash -c) with
# NFS_CSI_RENDERED_DEFAULT, NFS_CSI_RENDERED_FULL and NFS_CSI_RENDERED_DEPLOY
# exported, and counted as one more check, e.g. a script that starts
# kube-apiserver + etcd and runs `kubectl apply --dry-run=server -f`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/tools.sh

BUILD=1
for arg in "$@"; do
  case $arg in
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
  failed=$((failed + 1)); echo "FAIL - $1"
  [[ -n ${2:-} ]] && sed 's/^/       /' <<<"$2" | head -40
  return 0
}
# check NAME CMD...: one check, passes when CMD succeeds.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$out"; fi
}
# has FACTS NAME LINE: the facts file has exactly this line.
has() { if grep -qxF -- "$3" "$1"; then ok "$2"; else fail "$2" "missing fact: $3"; fi; }
# hasnt FACTS NAME REGEX: no line of the facts file matches.
hasnt() {
  local m
  if m=$(grep -E -- "$3" "$1"); then fail "$2" "unexpected: $m"; else ok "$2"; fi
}

chart=charts/nfs-csi
full=$chart/ci/full-values.yaml
render=${NFS_CSI_RENDER_DIR:-_output/packaging}
mkdir -p "$render"
trap 'nfs_csi::cleanup' EXIT

echo "== chart, deploy/, Dockerfile: go test in test/packaging (its own module: Helm SDK, k8s.io/api)"
# The checks render the chart with the Helm SDK, decode every object into its
# k8s.io/api type and assert on fields; see test/packaging/*_test.go. The
# renderings are written to $render for the hook below.
t0=$SECONDS
if ! out=$(cd test/packaging && GOFLAGS=-mod=mod GOWORK=off go vet ./... 2>&1); then
  fail "test/packaging: go vet" "$out"
fi
out=$(cd test/packaging && NFS_CSI_RENDER_DIR=$PWD/../../$render GOFLAGS=-mod=mod GOWORK=off go test -count=1 -v ./... 2>&1)
status=$?
# One line per test (its subtests and assertions are in the test's output).
while IFS= read -r line; do
  case $line in
    "--- PASS: "*) ok "test/packaging ${line#--- PASS: }" ;;
    "--- SKIP: "*) echo "skip - test/packaging ${line#--- SKIP: }" ;;
    "--- FAIL: "*) fail "test/packaging ${line#--- FAIL: }" "$(grep -F -A30 -- "$line" <<<"$out" | grep -E '_test.go:[0-9]+:|^        ' | head -30)" ;;
  esac
done <<<"$out"
if ((status != 0)) && ! grep -q '^--- FAIL: ' <<<"$out"; then
  fail "test/packaging: go test" "$(tail -30 <<<"$out")"
fi
echo "     test/packaging took $((SECONDS - t0))s"

if ((BUILD)); then
  echo "== build-all and qemu-user"
  t0=$SECONDS
  if out=$(make --no-print-directory build-all 2>&1); then
    ok "make build-all ($((SECONDS - t0))s)"
    grep '^build-all:' <<<"$out" | sed 's/^/       /'
  else
    fail "make build-all" "$out"
  fi
  for pair in amd64: arm64:aarch64 arm:arm ppc64le:ppc64le s390x:s390x riscv64:riscv64; do
    goarch=${pair%%:*} qarch=${pair#*:} bin=bin/linux-$goarch/nfs-csi
    name="linux/$goarch binary prints --version with arch=$goarch"
    [[ -n $qarch ]] && name+=" (qemu-$qarch-static)"
    if [[ ! -x $bin ]]; then fail "$name" "$bin missing"; continue; fi
    runner=()
    if [[ -n $qarch ]]; then
      q=$(nfs_csi::qemu "$qarch") || { fail "$name" "qemu-$qarch-static unavailable"; continue; }
      runner=("$q")
    fi
    if out=$("${runner[@]}" "$bin" --version 2>&1) &&
      grep -qE "^nfs-csi \S+ commit=\S+ built=\S+ go=go\S+ os=linux arch=${goarch}\$" <<<"$out"; then
      ok "$name: $out"
    else
      fail "$name" "$out"
    fi
  done
  # The build settings recorded in the binary: GOARM=7 for linux/arm.
  if out=$(go version -m bin/linux-arm/nfs-csi 2>&1) && grep -qE '^[[:space:]]+build[[:space:]]+GOARM=7$' <<<"$out" &&
    grep -qE '^[[:space:]]+build[[:space:]]+CGO_ENABLED=0$' <<<"$out"; then
    ok "linux/arm binary built with GOARM=7, CGO_ENABLED=0 (go version -m)"
  else
    fail "linux/arm binary built with GOARM=7, CGO_ENABLED=0 (go version -m)" "$out"
  fi
fi

if [[ -n ${NFS_CSI_APISERVER_CHECK:-} ]]; then
  echo "== hook: NFS_CSI_APISERVER_CHECK"
  export NFS_CSI_RENDERED_DEFAULT=$PWD/$render/default.yaml
  export NFS_CSI_RENDERED_FULL=$PWD/$render/full.yaml
  export NFS_CSI_RENDERED_DEPLOY=$PWD/$render/deploy.yaml
  check "NFS_CSI_APISERVER_CHECK ($NFS_CSI_APISERVER_CHECK)" bash -c "$NFS_CSI_APISERVER_CHECK"
fi

echo "rendered manifests kept in $render/ (default.yaml, full.yaml, deploy.yaml)"
echo "$passed passed, $failed failed"
((failed == 0))
