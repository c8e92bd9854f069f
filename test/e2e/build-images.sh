#!/usr/bin/env bash
# Build, once, the container images the e2e bed's real node runs, and cache
# them as OCI archives (what `ctr images import` loads) outside the repo,
# keyed by their content:
#
#   ${NFS_CSI_IMAGES:-$HOME/.cache/nfs-csi/images}/<name>-<key>.oci.tar
#
# No registry is reachable, so every image is made here, under the name the
# chart's defaults (and containerd's sandbox_image) give it:
#   - the driver: hack/image.sh with podman, from the repository's Dockerfile,
#     tagged with the chart's appVersion;
#   - csi-provisioner, csi-attacher, csi-resizer, node-driver-registrar,
#     livenessprobe:
#     FROM scratch around the binary test/e2e/build-bins.sh cached (run it
#     first), with the entrypoint of the upstream image;
#   - registry.k8s.io/pause:3.6: FROM scratch around test/e2e/images/pause;
#   - localhost/nfs-csi-e2e/busybox:static, for the test pods: FROM scratch
#     around Debian's static busybox.
# Writes "REFERENCE ARCHIVE" lines to LIST (default _output/e2e/images.txt).
# See test/e2e/README.md.
#
# Usage: test/e2e/build-images.sh [LIST]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
list=${1:-$root/_output/e2e/images.txt}
IMAGES=${NFS_CSI_IMAGES:-${HOME:?HOME is not set}/.cache/nfs-csi/images}
export NFS_CSI_IMAGES=$IMAGES
bins=$("$root/test/e2e/build-bins.sh" --print-dir)
# The sandbox image containerd 1.6 expects by default.
PAUSE_REF=registry.k8s.io/pause:3.6
# The test pods' image (keep in sync with test/e2e/node).
BUSYBOX_REF=localhost/nfs-csi-e2e/busybox:static

command -v podman >/dev/null || { echo "build-images: podman is missing: apt-get install -y podman mmdebstrap" >&2; exit 1; }
mkdir -p "$IMAGES"
exec 9>"$IMAGES/.lock"
flock 9
TMP=$(mktemp -d "$IMAGES/.tmp-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

START=$SECONDS
say() { printf '[build-images %4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
version() { sed -n "s/^$1=//p" "$root/test/e2e/build-bins.sh"; }

# scratch_image REF BINARY: an image with only BINARY, as /<its name>, which
# is the entrypoint (as in the kubernetes-csi images). Prints the archive.
scratch_image() {
	local ref=$1 bin=$2 name key out ctx t0=$SECONDS
	name=$(basename "$bin")
	[[ -x $bin ]] || { echo "build-images: $bin is missing: run test/e2e/build-bins.sh" >&2; return 1; }
	local dockerfile
	dockerfile=$(printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name")
	key=$(printf '%s\n%s\n%s\n' "$ref" "$dockerfile" "$(sha256sum <"$bin")" | sha256sum | cut -c1-16)
	out=$IMAGES/$name-$key.oci.tar
	if [[ -f $out ]]; then
		say "$ref: cached"
	else
		ctx=$TMP/ctx-$name
		mkdir -p "$ctx"
		cp "$bin" "$ctx/$name"
		printf '%s\n' "$dockerfile" >"$ctx/Dockerfile"
		podman build --quiet --pull=never --tag "$ref" "$ctx" >/dev/null
		podman save --quiet --format oci-archive -o "$out.tmp" "$ref"
		mv -f "$out.tmp" "$out"
		say "$ref: built in $((SECONDS - t0))s"
	fi
	echo "$out"
}

entries=()
add() { entries+=("$1 $2"); }

say "pause ($PAUSE_REF) from test/e2e/images/pause"
(cd "$root" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o "$TMP/pause" ./test/e2e/images/pause)
add "$PAUSE_REF" "$(scratch_image "$PAUSE_REF" "$TMP/pause")"

v=$(version PROVISIONER_VERSION)
add "registry.k8s.io/sig-storage/csi-provisioner:$v" \
	"$(scratch_image "registry.k8s.io/sig-storage/csi-provisioner:$v" "$bins/csi-provisioner-$v/csi-provisioner")"
v=$(version ATTACHER_VERSION)
add "registry.k8s.io/sig-storage/csi-attacher:$v" \
	"$(scratch_image "registry.k8s.io/sig-storage/csi-attacher:$v" "$bins/csi-attacher-$v/csi-attacher")"
v=$(version RESIZER_VERSION)
add "registry.k8s.io/sig-storage/csi-resizer:$v" \
	"$(scratch_image "registry.k8s.io/sig-storage/csi-resizer:$v" "$bins/csi-resizer-$v/csi-resizer")"
v=$(version REGISTRAR_VERSION)
add "registry.k8s.io/sig-storage/csi-node-driver-registrar:$v" \
	"$(scratch_image "registry.k8s.io/sig-storage/csi-node-driver-registrar:$v" "$bins/node-driver-registrar-$v/csi-node-driver-registrar")"
v=$(version LIVENESSPROBE_VERSION)
add "registry.k8s.io/sig-storage/livenessprobe:$v" \
	"$(scratch_image "registry.k8s.io/sig-storage/livenessprobe:$v" "$bins/livenessprobe-$v/livenessprobe")"

# The test pods' image: Debian's static busybox (busybox-static), as
# /busybox; pods run `/busybox sh -c ...`.
[[ -x /bin/busybox ]] || { echo "build-images: /bin/busybox is missing: apt-get install -y busybox-static" >&2; exit 1; }
add "$BUSYBOX_REF" "$(scratch_image "$BUSYBOX_REF" /bin/busybox)"

driver_repo=registry.example.io/nfs-csi/nfs-csi
driver_tag=$(sed -n 's/^appVersion:[[:space:]]*//p' "$root/charts/nfs-csi/Chart.yaml")
say "driver ($driver_repo:$driver_tag) from the Dockerfile (hack/image.sh, podman)"
mkdir -p "$IMAGES/.logs"
log=$IMAGES/.logs/nfs-csi-image.log
# The image's VERSION and GIT_COMMIT stamps are part of its cache key. The
# bed stamps the last commit that changed the build context (cmd/, pkg/,
# go.mod, ...; "-dirty" when it has uncommitted changes), not HEAD, so that
# a commit of tests or docs does not rebuild the image (minutes).
mapfile -t context < <(cd "$root" && NFS_CSI_ROOT=$root bash -c 'source hack/image-podman.sh && nfs_csi::context_files')
src_commit=$(git -C "$root" log -1 --format=%H -- "${context[@]}" 2>/dev/null || true)
if [[ -n $src_commit ]]; then
	src_version=$(git -C "$root" describe --tags --always "$src_commit")
	if [[ -n $(git -C "$root" status --porcelain -- "${context[@]}") ]]; then src_version+=-dirty; fi
	export GIT_COMMIT=$src_commit VERSION=$src_version
fi
t0=$SECONDS
if ! archive=$(IMAGE_BUILDER=podman IMAGE=$driver_repo TAG=$driver_tag "$root/hack/image.sh" 2>"$log"); then
	echo "build-images: hack/image.sh failed; last lines of $log:" >&2
	tail -n 40 "$log" >&2
	exit 1
fi
grep '^image.sh: ' "$log" | tail -n 1 >&2
say "driver image ready in $((SECONDS - t0))s (log: $log)"
add "$driver_repo:$driver_tag" "$archive"

mkdir -p "$(dirname "$list")"
printf '%s\n' "${entries[@]}" >"$list"
say "done: $list"
