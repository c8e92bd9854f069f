#!/usr/bin/env bash
# Cross-compiles static nfs-csi binaries for the six release architectures:
#
#   bin/linux-amd64/nfs-csi
#   bin/linux-arm64/nfs-csi
#   bin/linux-arm/nfs-csi       (32-bit ARMv7, hard float: GOARM=7; the image's linux/arm/v7)
#   bin/linux-ppc64le/nfs-csi
#   bin/linux-s390x/nfs-csi
#   bin/linux-riscv64/nfs-csi
#
# Version stamping comes from the environment (the Makefile exports VERSION,
# GIT_COMMIT, BUILD_DATE and LDFLAGS); run directly, it computes the same.
# Usage: hack/build-all.sh [os/arch ...]   (default: all six)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/tools.sh
nfs_csi::version_env

PLATFORMS=(linux/amd64 linux/arm64 linux/arm linux/ppc64le linux/s390x linux/riscv64)
(($#)) && PLATFORMS=("$@")

for platform in "${PLATFORMS[@]}"; do
  os=${platform%%/*} arch=${platform#*/}
  out=bin/${os}-${arch}/nfs-csi
  start=$SECONDS
  env=(CGO_ENABLED=0 GOOS="$os" GOARCH="$arch")
  [[ $arch == arm ]] && env+=(GOARM=7)
  env "${env[@]}" go build -trimpath -ldflags "$LDFLAGS" -o "$out" ./cmd/nfs-csi
  echo "build-all: ${out} (${env[*]}) $((SECONDS - start))s"
done
