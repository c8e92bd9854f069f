# syntax=docker/dockerfile:1
#
# nfs-csi image for linux/amd64, linux/arm64, linux/arm/v7, linux/ppc64le,
# linux/s390x and linux/riscv64:
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x,linux/riscv64 \
#     --build-arg VERSION=... --build-arg GIT_COMMIT=... --build-arg BUILD_DATE=... -t REPO:TAG --push .
#
# or simply `make image` (hack/image.sh). The build stage runs on the build
# machine's own platform and cross-compiles; only the runtime stage's apt-get
# runs under emulation for foreign platforms (binfmt/qemu, as buildx needs).

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=trixie

# ---- build: a static binary for TARGETOS/TARGETARCH(/TARGETVARIANT) ----------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# BuildKit sets these from --platform; linux/arm/v7 gives TARGETARCH=arm and
# TARGETVARIANT=v7, which becomes GOARM=7.
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=v0.0.0-dev
ARG GIT_COMMIT=unknown
ARG BUILD_DATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    if [ "$TARGETARCH" = arm ]; then export GOARM="${TARGETVARIANT#v}"; fi; \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
    go build -trimpath -o /out/nfs-csi \
      -ldflags "-s -w \
        -X github.com/example/nfs-csi/pkg/driver.driverVersion=${VERSION} \
        -X github.com/example/nfs-csi/pkg/driver.gitCommit=${GIT_COMMIT} \
        -X github.com/example/nfs-csi/pkg/driver.buildDate=${BUILD_DATE}" \
      ./cmd/nfs-csi

# ---- runtime: Debian slim with mount.nfs ------------------------------------
# Debian 13 (trixie) is published for all six platforms, riscv64 included.
FROM debian:${DEBIAN_RELEASE}-slim
# nfs-common provides mount.nfs/mount.nfs4 (the kernel's NFS client helper);
# mount/umount come from util-linux's mount, already in the base image.
# netbase provides /etc/protocols and /etc/services, which the slim image
# lacks: without them every NFSv3 mount failed with "mount.nfs: Protocol not
# supported" (its rpcbind and mountd calls look up "tcp" and "udp" by name),
# while NFSv4 mounts, which need neither, worked.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nfs-common netbase \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nfs-csi \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nfs-csi
# On PATH, so both "nfs-csi" and the absolute path work as a command.
COPY --from=build /out/nfs-csi /usr/bin/nfs-csi
ARG DEBIAN_RELEASE
ARG VERSION=v0.0.0-dev
ARG GIT_COMMIT=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="nfs-csi" \
      org.opencontainers.image.description="CSI driver that provisions Kubernetes volumes as subdirectories of NFS shares (nfs.csi.example.io)" \
      org.opencontainers.image.source="https://github.com/example/nfs-csi" \
      org.opencontainers.image.url="https://github.com/example/nfs-csi" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_RELEASE}-slim"
# Not root by default. Mounting needs root and CAP_SYS_ADMIN, which the chart
# grants per container (securityContext: privileged, runAsUser: 0); `nfs-csi
# --version` and the like run fine as this user.
USER 65532:65532
ENTRYPOINT ["/usr/bin/nfs-csi"]
