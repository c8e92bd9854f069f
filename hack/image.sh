#!/usr/bin/env bash
# Builds the nfs-csi image for the six release platforms with docker buildx.
# Needs a Docker engine with buildx and, for the foreign platforms, binfmt
# emulation (e.g. `docker run --privileged --rm tonistiigi/binfmt --install all`).
#
# Environment:
#   IMAGE      repository (default registry.example.io/nfs-csi/nfs-csi: build
#              and push your own)
#   TAG        tag (default $VERSION)
#   PLATFORMS  comma-separated (default the six below)
#   PUSH       1 to push (a multi-platform image can only be pushed or
#              exported, not loaded into the local engine); default 0, which
#              builds every platform and keeps the result in the build cache
#   BUILDX_ARGS extra arguments for `docker buildx build`
#
# This script is unverified on the development machines, which have no Docker
# engine; it fails early and clearly there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/tools.sh
nfs_csi::version_env

IMAGE=${IMAGE:-registry.example.io/nfs-csi/nfs-csi}
TAG=${TAG:-$VERSION}
PLATFORMS=${PLATFORMS:-linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64}
PUSH=${PUSH:-0}

die() { echo "image.sh: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 ||
  die "docker not found: 'make image' needs Docker with buildx (no engine here? use 'make build-all' for binaries)"
docker info >/dev/null 2>&1 ||
  die "no Docker engine reachable (docker info failed): 'make image' needs a running Docker engine with buildx"
docker buildx version >/dev/null 2>&1 ||
  die "docker buildx is not installed: 'make image' needs the buildx plugin"

args=(--platform "$PLATFORMS"
  --build-arg "VERSION=$VERSION"
  --build-arg "GIT_COMMIT=$GIT_COMMIT"
  --build-arg "BUILD_DATE=$BUILD_DATE"
  --tag "$IMAGE:$TAG")
[[ $PUSH == 1 ]] && args+=(--push)
# shellcheck disable=SC2206
args+=(${BUILDX_ARGS:-})

echo "image.sh: docker buildx build ${args[*]} ." >&2
docker buildx build "${args[@]}" .
