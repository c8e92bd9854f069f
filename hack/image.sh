#!/usr/bin/env bash
# Builds the nfs-csi image from the repository's Dockerfile, with one of:
#
#   docker   docker buildx, for the six release platforms (multi-platform;
#            foreign platforms need binfmt emulation, e.g.
#            `docker run --privileged --rm tonistiigi/binfmt --install all`)
#   podman   podman build, for this machine's platform only, with base images
#            made locally (no registry needed; hack/image-podman.sh), saved as
#            an OCI archive under ~/.cache/nfs-csi/images whose path is
#            printed on stdout
#
# Environment:
#   IMAGE_BUILDER  docker | podman | auto (default: docker when an engine with
#                  buildx answers, else podman when installed)
#   IMAGE      repository (default registry.example.io/nfs-csi/nfs-csi: build
#              and push your own)
#   TAG        tag (default $VERSION)
#   docker only:
#   PLATFORMS  comma-separated (default the six below)
#   PUSH       1 to push (a multi-platform image can only be pushed or
#              exported, not loaded into the local engine); default 0, which
#              builds every platform and keeps the result in the build cache
#   BUILDX_ARGS extra arguments for `docker buildx build`
#   podman only:
#   PODMAN_BUILD_ARGS extra arguments for `podman build`
#   NFS_CSI_IMAGES    cache directory (default ~/.cache/nfs-csi/images)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/tools.sh
nfs_csi::version_env

IMAGE=${IMAGE:-registry.example.io/nfs-csi/nfs-csi}
TAG=${TAG:-$VERSION}
PLATFORMS=${PLATFORMS:-linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64}
PUSH=${PUSH:-0}
IMAGE_BUILDER=${IMAGE_BUILDER:-auto}

die() { echo "image.sh: $*" >&2; exit 1; }

docker_ready() {
  command -v docker >/dev/null 2>&1 ||
    { why="docker not found"; return 1; }
  docker info >/dev/null 2>&1 ||
    { why="no Docker engine reachable (docker info failed)"; return 1; }
  docker buildx version >/dev/null 2>&1 ||
    { why="docker buildx is not installed"; return 1; }
}

why=
case $IMAGE_BUILDER in
auto)
  if docker_ready; then IMAGE_BUILDER=docker
  elif command -v podman >/dev/null 2>&1; then
    echo "image.sh: $why; building with podman for this machine's platform only" >&2
    IMAGE_BUILDER=podman
  else
    die "$why, and podman is not installed: 'make image' needs Docker with buildx, or podman (apt-get install -y podman mmdebstrap) for a single-platform image (for binaries only: 'make build-all')"
  fi ;;
docker)
  docker_ready || die "$why: IMAGE_BUILDER=docker needs a running Docker engine with buildx" ;;
podman) ;;
*) die "IMAGE_BUILDER=$IMAGE_BUILDER: want docker, podman or auto" ;;
esac

if [[ $IMAGE_BUILDER == podman ]]; then
  [[ $PUSH == 1 ]] && die "PUSH=1 is for docker buildx; with podman, push the printed archive yourself (skopeo copy oci-archive:FILE docker://$IMAGE:$TAG)"
  source hack/image-podman.sh
  nfs_csi::podman_image "$IMAGE" "$TAG"
  exit
fi

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
