#!/usr/bin/env bash
# Packaging tests: the Helm chart, the deploy/ manifests, the Dockerfile and
# the six-architecture build. Called by hack/test.sh (make test); runs alone
# too. Needs only Go (and root for apt-get, when qemu-user-static is missing).
#
#   hack/test-packaging.sh            every check
#   hack/test-packaging.sh --no-build skip build-all and the qemu runs
#
# What it checks: helm lint and helm template with default and full values;
# every rendered object decodes strictly into its k8s.io/api type; deploy/ is
# what the chart renders (and what `kubectl apply -k deploy/` would apply);
# invalid values fail with a clear message; structural facts of the rendered
# chart; the Dockerfile's essentials; make build-all; the riscv64 and arm64
# (and other) binaries print --version with the right arch under qemu-user.
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
work=$(mktemp -d "${TMPDIR:-/tmp}/nfs-csi-packaging.XXXXXX")
trap 'rm -rf "$work"; nfs_csi::cleanup' EXIT

echo "== tools"
t0=$SECONDS
nfs_csi::helm && helm=$NFS_CSI_HELM || { fail "install helm ${NFS_CSI_HELM_VERSION}"; echo "$passed passed, $failed failed"; exit 1; }
kubecheck=$(nfs_csi::kubecheck) || { fail "build kubecheck"; echo "$passed passed, $failed failed"; exit 1; }
echo "     helm $NFS_CSI_HELM_VERSION and kubecheck ready ($((SECONDS - t0))s)"
kv=(--kube-version "$NFS_CSI_KUBE_VERSION")
template() { "$helm" template "$@" "${kv[@]}"; }

echo "== helm lint and template"
check "helm lint --strict (default values)" "$helm" lint --strict "$chart" "${kv[@]}"
check "helm lint --strict (full values)" "$helm" lint --strict "$chart" "${kv[@]}" --values "$full"
# render NAME OUT HELM-TEMPLATE-ARGS...: one check, helm template into OUT.
render_to() {
  local name=$1 out=$2; shift 2
  if template "$@" >"$out" 2>"$work/helm.err"; then ok "$name"; else fail "$name" "$(cat "$work/helm.err")"; fi
}
render_to "helm template (default values)" "$render/default.yaml" nfs-csi "$chart" --namespace kube-system
render_to "helm template (full values)" "$render/full.yaml" r1 "$chart" --namespace storage --values "$full"
render_to "helm template (attachRequired=false)" "$work/noattach.yaml" nfs-csi "$chart" --set csiDriver.attachRequired=false
render_to "helm template (clusterID=abc)" "$work/clusterid.yaml" nfs-csi "$chart" --namespace kube-system --set clusterID=abc
render_to "helm template (clusterID empty, as in earlier versions' values)" "$work/clusterid-empty.yaml" nfs-csi "$chart" --namespace kube-system --set-string clusterID=
if grep -rqw lookup "$chart/templates"; then
  fail "the chart uses no Helm lookup (helm template, Argo CD and Flux do not run it)" "$(grep -rnw lookup "$chart/templates")"
else
  ok "the chart uses no Helm lookup (helm template, Argo CD and Flux do not run it)"
fi

# NOTES.txt: helm prints it only after a real install, so render it in a
# copy of the chart where it is a named template, output (base64) as a
# ConfigMap, with the same values and the same engine.
notes_chart=$work/notes-chart
cp -r "$chart" "$notes_chart"
{
  echo '{{- define "nfs-csi.test.notes" -}}'
  cat "$chart/templates/NOTES.txt"
  echo '{{- end }}'
} >"$notes_chart/templates/_notes_test.tpl"
rm "$notes_chart/templates/NOTES.txt"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata:' '  name: notes' 'data:' \
  '  notes: {{ include "nfs-csi.test.notes" . | b64enc }}' >"$notes_chart/templates/notes-test.yaml"
# notes NAME NEEDLE HELM-TEMPLATE-ARGS...: the notes render and contain NEEDLE.
notes() {
  local name=$1 needle=$2 out; shift 2
  if out=$(template "$@" --show-only templates/notes-test.yaml 2>&1) &&
    out=$(sed -n 's/^  notes: //p' <<<"$out" | base64 -d) && grep -qF -- "$needle" <<<"$out"; then
    ok "$name"
  else
    fail "$name" "expected in NOTES: $needle
$out"
  fi
}
notes "NOTES.txt (default values): how to check the driver's pods" \
  "kubectl -n kube-system get deploy,ds,pods -l app.kubernetes.io/instance=nfs-csi" nfs-csi "$notes_chart" --namespace kube-system
notes "NOTES.txt (default values): how to create a StorageClass and a first PVC" \
  "No StorageClass was created" nfs-csi "$notes_chart" --namespace kube-system
notes "NOTES.txt (full values): a first PVC of the release's StorageClass" \
  "storageClassName: nfs-csi" r1 "$notes_chart" --namespace storage --values "$full"

echo "== strict decoding into k8s.io/api types"
# strict NAME FACTS FILE...: one check, kubecheck strict FILE... into FACTS.
strict() {
  local name=$1 facts=$2; shift 2
  if "$kubecheck" strict "$@" >"$facts" 2>"$work/kubecheck.err"; then
    ok "$name ($(sed -n 's/^objects=//p' "$facts") objects)"
  else
    fail "$name" "$(cat "$work/kubecheck.err")"
  fi
}
strict "default render: every object decodes strictly" "$work/default.facts" "$render/default.yaml"
strict "full render: every object decodes strictly" "$work/full.facts" "$render/full.yaml"
strict "attachRequired=false render: every object decodes strictly" "$work/noattach.facts" "$work/noattach.yaml"
strict "clusterID=abc render: every object decodes strictly" "$work/clusterid.facts" "$work/clusterid.yaml"
strict "clusterID empty render: every object decodes strictly" "$work/clusterid-empty.facts" "$work/clusterid-empty.yaml"
strict "deploy/examples: every object decodes strictly" "$work/examples.facts" deploy/examples/*.yaml
# Negative control: the strict decoder does catch a misspelt field.
sed 's/mountPropagation: Bidirectional/mountPropagaton: Bidirectional/' "$render/default.yaml" >"$work/typo.yaml"
if out=$("$kubecheck" strict "$work/typo.yaml" 2>&1); then
  fail "kubecheck rejects a misspelt field (negative control)" "accepted: $out"
elif grep -q 'unknown field' <<<"$out"; then
  ok "kubecheck rejects a misspelt field (negative control)"
else
  fail "kubecheck rejects a misspelt field (negative control)" "$out"
fi

if [[ -n ${NFS_CSI_HELM_HOME:-} && $HELM_CACHE_HOME == "$NFS_CSI_HELM_HOME"/* && $HELM_CONFIG_HOME == "$NFS_CSI_HELM_HOME"/* && $HELM_DATA_HOME == "$NFS_CSI_HELM_HOME"/* ]]; then
  ok "helm runs with private cache/config/data directories (offline)"
else
  fail "helm runs with private cache/config/data directories (offline)" "HELM_CACHE_HOME=${HELM_CACHE_HOME:-}"
fi

echo "== deploy/ is generated from the chart"
if out=$(hack/manifests.sh "$work/deploy" 2>&1) &&
  out=$(diff -ru --exclude=examples --exclude=agent deploy "$work/deploy" 2>&1); then
  ok "deploy/ matches the chart's rendering (make manifests)"
else
  fail "deploy/ matches the chart's rendering (make manifests)" "deploy/ is stale, run 'make manifests':
$out"
fi
for f in deploy/nfs-csi.yaml deploy/kustomization.yaml; do
  if head -1 "$f" 2>/dev/null | grep -q '^# Code generated by hack/manifests.sh .*DO NOT EDIT\.$'; then
    ok "$f has the generated-file header"
  else
    fail "$f has the generated-file header"
  fi
done
if "$kubecheck" kustomize deploy >"$render/deploy.yaml" 2>"$work/kustomize.err" &&
  "$kubecheck" strict "$render/deploy.yaml" | LC_ALL=C sort >"$work/deploy.facts" &&
  LC_ALL=C sort "$work/default.facts" >"$work/default.sorted" &&
  out=$(diff "$work/default.sorted" "$work/deploy.facts"); then
  ok "kubectl apply -k deploy/ (kustomize) yields the chart's objects ($(sed -n 's/^objects=//p' "$work/deploy.facts") objects)"
else
  fail "kubectl apply -k deploy/ (kustomize) yields the chart's objects" "$(cat "$work/kustomize.err" 2>/dev/null)${out:-}"
fi

echo "== values.schema.json rejects invalid values with a clear message"
# expect_fail NAME MESSAGE HELM-ARGS...: helm template fails, saying MESSAGE.
expect_fail() {
  local name=$1 msg=$2 out; shift 2
  if out=$(template x "$chart" "$@" 2>&1 >/dev/null); then
    fail "$name" "helm template succeeded"
  elif grep -qF -- "$msg" <<<"$out"; then
    ok "$name"
  else
    fail "$name" "expected message: $msg
got: $out"
  fi
}
sc=(--set 'storageClasses[0].name=nfs' --set 'storageClasses[0].share=/exports')
expect_fail "StorageClass without server" \
  "at '/storageClasses/0': missing property 'server'" "${sc[@]}"
sc+=(--set 'storageClasses[0].server=nfs.example.internal')
expect_fail "StorageClass with unknown onDelete" \
  "at '/storageClasses/0/onDelete': value must be one of 'delete', 'retain', 'archive'" \
  "${sc[@]}" --set 'storageClasses[0].onDelete=destroy'
expect_fail "StorageClass with non-octal mountPermissions" \
  "at '/storageClasses/0/mountPermissions': '0999' does not match pattern '^[0-7]{3,4}\$'" \
  "${sc[@]}" --set-string 'storageClasses[0].mountPermissions=0999'
printf 'storageClasses:\n  - {name: nfs, server: s, share: /x, mountPermissions: 0777}\n' >"$work/unquoted.yaml"
expect_fail "StorageClass with unquoted (numeric) mountPermissions" \
  "at '/storageClasses/0/mountPermissions': got number, want string" --values "$work/unquoted.yaml"
expect_fail "StorageClass with a relative share" \
  "at '/storageClasses/0/share': 'exports' does not match pattern '^/'" \
  "${sc[@]}" --set 'storageClasses[0].share=exports'
expect_fail "two default StorageClasses" \
  "at most one StorageClass can be the cluster's default" "${sc[@]}" \
  --set 'storageClasses[0].default=true' --set 'storageClasses[1].name=b' \
  --set 'storageClasses[1].server=s' --set 'storageClasses[1].share=/x' --set 'storageClasses[1].default=true'
expect_fail "misspelt top-level value" \
  "additional properties 'controler' not allowed" --set controler.replicas=1
expect_fail "invalid duration" \
  "at '/driver/nfsTimeout': '30 seconds' does not match pattern" --set 'driver.nfsTimeout=30 seconds'
expect_fail "shareMountOptions entry without share" \
  "at '/controller/shareMountOptions/0': missing properties 'share', 'mountOptions'" --set 'controller.shareMountOptions[0].server=s'
expect_fail "shareMountOptions with a comma inside an option" \
  "at '/controller/shareMountOptions/0/mountOptions/0'" --set 'controller.shareMountOptions[0].server=s' \
  --set 'controller.shareMountOptions[0].share=/x' --set 'controller.shareMountOptions[0].mountOptions[0]=a\,b'
expect_fail "clusterID with white space" \
  "at '/clusterID': 'prod east' does not match pattern" --set 'clusterID=prod east'

echo "== documentation"
if paths=$("$kubecheck" values "$chart/values.schema.json" 2>&1); then
  missing=$(while read -r p; do [[ $p == global ]] && continue; grep -qF -- "\`$p\`" docs/install.md || echo "$p"; done <<<"$paths")
  if [[ -z $missing ]]; then
    ok "docs/install.md documents every value ($(grep -vcx global <<<"$paths") values)"
  else
    fail "docs/install.md documents every value" "missing: $missing"
  fi
  missing=$(while read -r p; do
    [[ $p == global ]] && continue
    grep -qE "^[[:space:]]*${p##*.}:" "$chart/values.yaml" || echo "$p"
  done <<<"$paths")
  if [[ -z $missing ]]; then ok "values.yaml sets every value of the schema"; else fail "values.yaml sets every value of the schema" "missing: $missing"; fi
else
  fail "docs/install.md documents every value" "$paths"
fi

echo "== structural facts of the default rendering"
d=$work/default.facts
has "$d" "CSIDriver attachRequired: true" "CSIDriver/nfs.csi.example.io.attachRequired=true"
has "$d" "CSIDriver podInfoOnMount: false" "CSIDriver/nfs.csi.example.io.podInfoOnMount=false"
has "$d" "CSIDriver fsGroupPolicy: File" "CSIDriver/nfs.csi.example.io.fsGroupPolicy=File"
has "$d" "CSIDriver lifecycle modes: Persistent only (inline volumes off)" "CSIDriver/nfs.csi.example.io.volumeLifecycleModes=Persistent"
has "$d" "controller: 2 replicas" "Deployment/nfs-csi-controller.replicas=2"
has "$d" "controller driver: --mode=controller" "Deployment/nfs-csi-controller.container.nfs-csi.arg=--mode=controller"
has "$d" "controller driver: privileged" "Deployment/nfs-csi-controller.container.nfs-csi.privileged=true"
has "$d" "controller driver: emptyDir workdir" "Deployment/nfs-csi-controller.volume.workdir=emptyDir"
has "$d" "provisioner: --extra-create-metadata" "Deployment/nfs-csi-controller.container.csi-provisioner.arg=--extra-create-metadata"
has "$d" "provisioner: --leader-election" "Deployment/nfs-csi-controller.container.csi-provisioner.arg=--leader-election"
has "$d" "provisioner: --timeout=60s" "Deployment/nfs-csi-controller.container.csi-provisioner.arg=--timeout=60s"
has "$d" "provisioner image v6.3.0" "Deployment/nfs-csi-controller.container.csi-provisioner.image=registry.k8s.io/sig-storage/csi-provisioner:v6.3.0"
has "$d" "attacher: --leader-election" "Deployment/nfs-csi-controller.container.csi-attacher.arg=--leader-election"
has "$d" "attacher image v4.13.0" "Deployment/nfs-csi-controller.container.csi-attacher.image=registry.k8s.io/sig-storage/csi-attacher:v4.13.0"
has "$d" "controller livenessprobe image v2.19.0" "Deployment/nfs-csi-controller.container.liveness-probe.image=registry.k8s.io/sig-storage/livenessprobe:v2.19.0"
has "$d" "controller livenessprobe serves the driver's health port" "Deployment/nfs-csi-controller.container.liveness-probe.arg=--http-endpoint=:29652"
has "$d" "controller driver: health port 29652" "Deployment/nfs-csi-controller.container.nfs-csi.port.healthz=29652"
has "$d" "controller driver: livenessProbe httpGets /healthz" "Deployment/nfs-csi-controller.container.nfs-csi.livenessProbe=/healthz:healthz"
has "$d" "driver image defaults to appVersion" "Deployment/nfs-csi-controller.container.nfs-csi.image=registry.example.io/nfs-csi/nfs-csi:v0.1.0"
has "$d" "node driver: --mode=node" "DaemonSet/nfs-csi-node.container.nfs-csi.arg=--mode=node"
has "$d" "node driver: --nodeid from the downward API" "DaemonSet/nfs-csi-node.container.nfs-csi.arg=--nodeid=\$(NODE_ID)"
has "$d" "node driver: NODE_ID = spec.nodeName" "DaemonSet/nfs-csi-node.container.nfs-csi.env.NODE_ID=fieldRef:spec.nodeName"
has "$d" "node driver: privileged" "DaemonSet/nfs-csi-node.container.nfs-csi.privileged=true"
has "$d" "node driver: kubelet dir mounted with Bidirectional propagation" "DaemonSet/nfs-csi-node.container.nfs-csi.mount.kubelet-dir=/var/lib/kubelet:Bidirectional"
has "$d" "node: kubelet dir is a hostPath" "DaemonSet/nfs-csi-node.volume.kubelet-dir=hostPath:/var/lib/kubelet"
has "$d" "node: registrar registers the socket under the kubelet's plugins dir" "DaemonSet/nfs-csi-node.container.node-driver-registrar.arg=--kubelet-registration-path=/var/lib/kubelet/plugins/nfs.csi.example.io/csi.sock"
has "$d" "node: registration dir" "DaemonSet/nfs-csi-node.volume.registration-dir=hostPath:/var/lib/kubelet/plugins_registry"
has "$d" "node-driver-registrar image v2.17.0" "DaemonSet/nfs-csi-node.container.node-driver-registrar.image=registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0"
has "$d" "node livenessprobe serves the driver's health port" "DaemonSet/nfs-csi-node.container.liveness-probe.arg=--http-endpoint=:29653"
has "$d" "node driver: livenessProbe httpGets /healthz" "DaemonSet/nfs-csi-node.container.nfs-csi.livenessProbe=/healthz:healthz"
has "$d" "node: tolerates every taint" "DaemonSet/nfs-csi-node.toleration=:Exists:"
has "$d" "node: host network" "DaemonSet/nfs-csi-node.hostNetwork=true"
has "$d" "node: no API token" "DaemonSet/nfs-csi-node.automountServiceAccountToken=false"
has "$d" "controller ServiceAccount may get csinodes (driver's own role)" "ClusterRole/nfs-csi-controller.rule=storage.k8s.io|csinodes|get|"
has "$d" "attacher may patch volumeattachments/status" "ClusterRole/nfs-csi-attacher.rule=storage.k8s.io|volumeattachments/status|patch|"
has "$d" "leader election: leases in the release namespace" "Role/nfs-csi-leader-election.rule=coordination.k8s.io|leases|get,list,watch,create,update,delete|"
hasnt "$d" "no \"*\" in any RBAC rule" '\.rule=.*\*'
if grep -q '"\*"' "$render/default.yaml" "$render/full.yaml"; then
  fail 'no "*" anywhere in the rendered YAML' "$(grep -n '"\*"' "$render/default.yaml" "$render/full.yaml")"
else
  ok 'no "*" anywhere in the rendered YAML'
fi
hasnt "$d" "no role is bound to the node ServiceAccount" 'Binding/.*\.subject=ServiceAccount/.*/nfs-csi-node$'
hasnt "$d" "no secrets access" '\.rule=[^|]*\|[^|]*secrets'
hasnt "$d" "default values create no StorageClass" '^StorageClass/'
has "$d" "default rendering has 15 objects (13, and the csi-resizer ClusterRole and binding)" "objects=15"

echo "== structural facts with full values and with attachRequired=false"
f=$work/full.facts
has "$f" "full: Ephemeral lifecycle mode with inline volumes" "CSIDriver/nfs2.csi.example.io.volumeLifecycleModes=Persistent,Ephemeral"
has "$f" "full: subDir template reaches the StorageClass verbatim" 'StorageClass/nfs-csi.parameter.subDir=${pvc.metadata.namespace}/${pvc.metadata.name}'
has "$f" "full: default StorageClass annotation" "StorageClass/nfs-csi.annotation.storageclass.kubernetes.io/is-default-class=true"
hasnt "$f" "full: only one default StorageClass" '^StorageClass/nfs-csi-retain\.annotation\.storageclass\.kubernetes\.io/is-default-class'
has "$f" "full: mountPermissions passed as the octal string" "StorageClass/nfs-csi.parameter.mountPermissions=0777"
has "$f" "full: mountOptions" "StorageClass/nfs-csi.mountOptions=nfsvers=4.1,hard,timeo=600"
has "$f" "full: extra parameters" "StorageClass/nfs-csi.parameter.archiveOnDelete=true"
has "$f" "full: provisioner is the overridden driver name" "StorageClass/nfs-csi.provisioner=nfs2.csi.example.io"
has "$f" "full: custom kubeletDir in the Bidirectional mount" "DaemonSet/storage-nfs-node.container.nfs-csi.mount.kubelet-dir=/var/snap/microk8s/common/var/lib/kubelet:Bidirectional"
has "$f" "full: custom kubeletDir in the registration path" "DaemonSet/storage-nfs-node.container.node-driver-registrar.arg=--kubelet-registration-path=/var/snap/microk8s/common/var/lib/kubelet/plugins/nfs2.csi.example.io/csi.sock"
has "$f" "full: extra args appended" "Deployment/storage-nfs-controller.container.csi-provisioner.arg=--worker-threads=50"
has "$f" "full: self-built sidecar image" "DaemonSet/storage-nfs-node.container.node-driver-registrar.image=registry.internal.example/riscv64/csi-node-driver-registrar:v2.17.0-riscv64"
has "$f" "full: controller in the host network" "Deployment/storage-nfs-controller.hostNetwork=true"
has "$f" "full: named ServiceAccount" "Deployment/storage-nfs-controller.serviceAccountName=nfs-ctrl-sa"
n=$work/noattach.facts
has "$n" "attachRequired=false: CSIDriver says so" "CSIDriver/nfs.csi.example.io.attachRequired=false"
hasnt "$n" "attachRequired=false: no attacher container" 'container\.csi-attacher\.'
hasnt "$n" "attachRequired=false: no attacher role" '^ClusterRole/.*-attacher$'

echo "== --cluster-id of the controller"
has "$d" "default rendering: --cluster-id=auto (the driver reads the kube-system UID)" "Deployment/nfs-csi-controller.container.nfs-csi.arg=--cluster-id=auto"
has "$d" "default rendering: the controller may get the kube-system Namespace, and only it" "ClusterRole/nfs-csi-controller.rule=|namespaces|get|kube-system"
hasnt "$d" "no rule on namespaces without resourceNames" '\.rule=[^|]*\|namespaces\|[^|]*\|$'
has "$f" "full: --cluster-id from clusterID" "Deployment/storage-nfs-controller.container.nfs-csi.arg=--cluster-id=prod-east-1"
hasnt "$f" "full: explicit clusterID, no access to namespaces" '\.rule=[^|]*\|namespaces\|'
c=$work/clusterid.facts
has "$c" "clusterID=abc: the controller's driver gets --cluster-id=abc" "Deployment/nfs-csi-controller.container.nfs-csi.arg=--cluster-id=abc"
hasnt "$c" "clusterID=abc: no access to namespaces" '\.rule=[^|]*\|namespaces\|'
e=$work/clusterid-empty.facts
has "$e" "clusterID empty: --cluster-id=auto" "Deployment/nfs-csi-controller.container.nfs-csi.arg=--cluster-id=auto"
has "$e" "clusterID empty: the controller may get the kube-system Namespace" "ClusterRole/nfs-csi-controller.rule=|namespaces|get|kube-system"
# onlyone NAME FACTS: the one line about cluster-id is the controller driver's.
onlyone() {
  local m
  m=$(grep -F -- 'cluster-id' "$2")
  if [[ $m == Deployment/nfs-csi-controller.container.nfs-csi.arg=--cluster-id=* && $(wc -l <<<"$m") == 1 ]]; then
    ok "$1"
  else
    fail "$1" "lines with cluster-id: ${m:-none}"
  fi
}
onlyone "clusterID=abc: no other container (node DaemonSet, sidecars) gets --cluster-id" "$c"
onlyone "default: no other container (node DaemonSet, sidecars) gets --cluster-id" "$d"

echo "== --share-mount-options of the controller"
hasnt "$d" "default rendering: no --share-mount-options" 'share-mount-options'
has "$f" "full: controller.shareMountOptions as one JSON argument" \
  'Deployment/storage-nfs-controller.container.nfs-csi.arg=--share-mount-options=[{"mountOptions":["nfsvers=4.1","hard"],"server":"nfs.example.internal","share":"/srv/nfs"},{"mountOptions":[],"server":"[fd00::5]","share":"/"}]'
if [[ $(grep -c 'share-mount-options' "$f") == 1 ]]; then
  ok "full: only the controller's driver gets --share-mount-options"
else
  fail "full: only the controller's driver gets --share-mount-options" "$(grep 'share-mount-options' "$f")"
fi

echo "== metrics"
has "$d" "controller driver: --metrics-address=:29654" "Deployment/nfs-csi-controller.container.nfs-csi.arg=--metrics-address=:29654"
has "$d" "controller driver: container port metrics=29654" "Deployment/nfs-csi-controller.container.nfs-csi.port.metrics=29654"
has "$d" "node driver: --metrics-address=:29655" "DaemonSet/nfs-csi-node.container.nfs-csi.arg=--metrics-address=:29655"
has "$d" "node driver: container port metrics=29655" "DaemonSet/nfs-csi-node.container.nfs-csi.port.metrics=29655"
hasnt "$d" "no sidecar gets --metrics-address" 'container\.(csi-|liveness|node-driver).*metrics-address'
if grep -q '^kind: ServiceMonitor' "$render/default.yaml"; then fail "default rendering: no ServiceMonitor"; else ok "default rendering: no ServiceMonitor"; fi
render_to "helm template (metrics.serviceMonitor.enabled, node.metricsPort=0)" "$work/sm.yaml" nfs-csi "$chart" --namespace kube-system \
  --set metrics.serviceMonitor.enabled=true --set node.metricsPort=0 --set 'metrics.serviceMonitor.labels.release=prom'
# kubecheck knows no ServiceMonitor type: decode the rest strictly, and check
# the ServiceMonitor's fields here.
awk 'BEGIN{RS="\n---\n"; ORS="\n---\n"} !/\nkind: ServiceMonitor\n/' "$work/sm.yaml" >"$work/sm-core.yaml"
strict "serviceMonitor render without the ServiceMonitor: every object decodes strictly" "$work/sm.facts" "$work/sm-core.yaml"
has "$work/sm.facts" "serviceMonitor: a Service for the controller's metrics port" "Service/nfs-csi-controller-metrics"
hasnt "$work/sm.facts" "serviceMonitor with node.metricsPort=0: no node Service" '^Service/nfs-csi-node-metrics'
hasnt "$work/sm.facts" "node.metricsPort=0: the node driver gets no --metrics-address" '^DaemonSet/.*metrics-address'
sm=$(awk 'BEGIN{RS="\n---\n"} /\nkind: ServiceMonitor\n/' "$work/sm.yaml")
if grep -q '^    release: prom$' <<<"$sm" && grep -q '^    - port: metrics$' <<<"$sm" && grep -q 'nfs-csi.example.io/metrics: "true"' <<<"$sm"; then
  ok "ServiceMonitor: its labels, the metrics port, the Services' selector label"
else
  fail "ServiceMonitor: its labels, the metrics port, the Services' selector label" "$sm"
fi
check "helm lint --strict (metrics.serviceMonitor.enabled)" "$helm" lint --strict "$chart" "${kv[@]}" --set metrics.serviceMonitor.enabled=true

echo "== Dockerfile"
df=Dockerfile
dcheck() { if grep -qE -- "$2" "$df"; then ok "Dockerfile: $1"; else fail "Dockerfile: $1" "no line matches: $2"; fi; }
dcheck "build stage runs on the build platform" '^FROM --platform=\$BUILDPLATFORM golang:'
dcheck "cross-compiles for TARGETOS/TARGETARCH, static" 'CGO_ENABLED=0 GOOS="\$TARGETOS" GOARCH="\$TARGETARCH"'
dcheck "GOARM from TARGETVARIANT" 'GOARM="\$\{TARGETVARIANT#v\}"'
dcheck "runtime on Debian trixie slim" '^ARG DEBIAN_RELEASE=trixie$'
dcheck "runtime installs nfs-common" 'apt-get install -y --no-install-recommends nfs-common'
dcheck "binary at /usr/bin/nfs-csi" '^COPY --from=build /out/nfs-csi /usr/bin/nfs-csi$'
dcheck "entrypoint /usr/bin/nfs-csi" '^ENTRYPOINT \["/usr/bin/nfs-csi"\]$'
dcheck "non-root user" '^USER 65532:65532$'
dcheck "OCI labels" 'org\.opencontainers\.image\.(source|version|revision)'
if [[ $(grep -c '^FROM ' "$df") == 2 ]] && ! grep -qE '^FROM --platform=\S+ debian' "$df"; then
  ok "Dockerfile: two stages, runtime stage of the target platform"
else
  fail "Dockerfile: two stages, runtime stage of the target platform"
fi
platforms=$(sed -n 's/^PLATFORMS=\${PLATFORMS:-\(.*\)}$/\1/p' hack/image.sh)
if [[ $platforms == linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64 ]]; then
  ok "make image builds the six platforms"
else
  fail "make image builds the six platforms" "hack/image.sh PLATFORMS=$platforms"
fi
if ! docker info >/dev/null 2>&1; then
  # Without an engine, make image falls back to podman (a single-platform
  # build, slow): only check that asking for docker fails clearly.
  if out=$(IMAGE_BUILDER=docker hack/image.sh 2>&1); then
    fail "IMAGE_BUILDER=docker make image fails clearly without a Docker engine" "$out"
  elif grep -q 'needs' <<<"$out"; then
    ok "IMAGE_BUILDER=docker make image fails clearly without a Docker engine"
  else
    fail "IMAGE_BUILDER=docker make image fails clearly without a Docker engine" "$out"
  fi
fi

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
