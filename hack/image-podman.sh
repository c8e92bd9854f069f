#!/usr/bin/env bash
# Sourced by hack/image.sh: build the driver's image from the repository's
# Dockerfile with podman, for the build machine's own platform, on a machine
# without a Docker engine and without a container registry.
#
#   nfs_csi::podman_image IMAGE TAG
#
# The Dockerfile's two FROM images (golang:<GO_VERSION> and
# debian:<DEBIAN_RELEASE>-slim) cannot be pulled here, so they are made
# locally when podman does not have them yet:
#   - debian:<release>-slim: mmdebstrap --variant=minbase of that release from
#     the machine's Debian mirror;
#   - golang:<GO_VERSION>: the same root file system plus the machine's Go
#     (GOROOT, which must be that version) and CA bundle, so that `go mod
#     download` in the build stage can reach the Go module proxy.
# Their root file systems are cached as tarballs, and the driver image as an
# OCI archive (what `ctr images import` loads), outside the repository:
#   ${NFS_CSI_IMAGES:-$HOME/.cache/nfs-csi/images}/base/<base>-<key>.tar
#   ${NFS_CSI_IMAGES:-$HOME/.cache/nfs-csi/images}/nfs-csi-<key>.oci.tar
# keyed by their inputs: the base's release, mirror and Go version; for the
# driver image, the Dockerfile, every file of the build context, the VERSION
# and GIT_COMMIT stamps, the image name and the bases' keys. BUILD_DATE is not
# part of the key: a cached image keeps the date of its first build.
# Prints the archive's path on stdout; progress goes to stderr.

NFS_CSI_IMAGES=${NFS_CSI_IMAGES:-${HOME:-/root}/.cache/nfs-csi/images}

nfs_csi::image_log() { echo "image.sh: $*" >&2; }

# nfs_csi::dockerfile_arg NAME: the default of ARG NAME in the Dockerfile.
nfs_csi::dockerfile_arg() {
  sed -n "s/^ARG $1=\(.*\)\$/\1/p" "$NFS_CSI_ROOT/Dockerfile" | head -n 1
}

# nfs_csi::debian_mirror: the machine's first Debian mirror (deb822 or
# one-line sources), or deb.debian.org.
nfs_csi::debian_mirror() {
  local m
  m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [[ -n $m ]] || m=$(sed -n 's/^deb[[:space:]]\{1,\}\(http[^[:space:]]*debian\)[[:space:]].*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
  echo "${NFS_CSI_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# nfs_csi::context_files: the build context's files, relative to the repo:
# git's tracked and untracked-but-not-ignored files minus what .dockerignore
# excludes (its patterns here are top-level names and globs; a pattern
# without "/" matches at the top level only, as in Docker).
nfs_csi::context_files() {
  local -a pats=()
  local p f skip
  while IFS= read -r p; do
    p=${p%%#*}
    p=${p%"${p##*[![:space:]]}"}
    [[ -n $p ]] && pats+=("$p")
  done <"$NFS_CSI_ROOT/.dockerignore"
  while IFS= read -r f; do
    [[ -f $NFS_CSI_ROOT/$f ]] || continue
    skip=
    for p in "${pats[@]}"; do
      # shellcheck disable=SC2053 # $p is a glob on purpose
      if [[ ${f%%/*} == $p ]]; then skip=1; break; fi
    done
    [[ -n $skip ]] || echo "$f"
  done < <(git -C "$NFS_CSI_ROOT" ls-files -co --exclude-standard | LC_ALL=C sort -u)
}

# nfs_csi::podman_base_debian RELEASE: make sure podman has
# docker.io/library/debian:RELEASE-slim; prints the key of its rootfs.
nfs_csi::podman_base_debian() {
  local release=$1 mirror key tar ref t0=$SECONDS
  mirror=$(nfs_csi::debian_mirror)
  key=$(printf 'minbase %s %s\n' "$release" "$mirror" | sha256sum | cut -c1-12)
  tar=$NFS_CSI_IMAGES/base/debian-$release-$key.tar
  ref=docker.io/library/debian:$release-slim
  if [[ ! -f $tar ]]; then
    command -v mmdebstrap >/dev/null || { nfs_csi::image_log "mmdebstrap is missing: apt-get install -y mmdebstrap"; return 1; }
    nfs_csi::image_log "base $ref: mmdebstrap --variant=minbase $release $mirror (once; about 2 minutes)"
    mkdir -p "$NFS_CSI_IMAGES/base" || return 1
    mmdebstrap --quiet --format=tar --variant=minbase "$release" "$tar.tmp" "$mirror" >&2 || { rm -f "$tar.tmp"; return 1; }
    mv -f "$tar.tmp" "$tar" || return 1
  fi
  nfs_csi::podman_import "$tar" "$ref" "$key" || return 1
  nfs_csi::image_log "base $ref: ready ($((SECONDS - t0))s)"
  echo "$key"
}

# nfs_csi::podman_base_golang VERSION DEBIAN-RELEASE DEBIAN-KEY: make sure
# podman has docker.io/library/golang:VERSION, made of the Debian rootfs plus
# this machine's Go, which must be VERSION.
nfs_csi::podman_base_golang() {
  local version=$1 release=$2 debkey=$3 goroot have key tar ref t0=$SECONDS
  goroot=$(go env GOROOT) || return 1
  have=$(go env GOVERSION) || return 1
  if [[ $have != "go$version" ]]; then
    nfs_csi::image_log "the Dockerfile's build stage wants golang:$version, but this machine's Go is $have: install go$version or pass --build-arg GO_VERSION=${have#go} via PODMAN_BUILD_ARGS"
    return 1
  fi
  key=$(printf 'golang %s %s %s %s\n' "$version" "$goroot" "$debkey" "$(sha256sum </etc/ssl/certs/ca-certificates.crt)" | sha256sum | cut -c1-12)
  tar=$NFS_CSI_IMAGES/base/golang-$version-$key.tar
  ref=docker.io/library/golang:$version
  if [[ ! -f $tar ]]; then
    nfs_csi::image_log "base $ref: the debian:$release-slim rootfs plus $goroot and the CA bundle (once)"
    cp "$NFS_CSI_IMAGES/base/debian-$release-$debkey.tar" "$tar.tmp" &&
      tar --append -f "$tar.tmp" -C / --transform "s|^${goroot#/}|usr/local/go|" \
        "${goroot#/}" etc/ssl/certs/ca-certificates.crt || { rm -f "$tar.tmp"; return 1; }
    mv -f "$tar.tmp" "$tar" || return 1
  fi
  # As the official image: Go on PATH, GOPATH /go (the Dockerfile's cache
  # mounts use /go/pkg/mod), no toolchain downloads.
  nfs_csi::podman_import "$tar" "$ref" "$key" \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV GOPATH=/go' --change 'ENV GOTOOLCHAIN=local' --change 'WORKDIR /go' || return 1
  nfs_csi::image_log "base $ref: ready ($((SECONDS - t0))s)"
  echo "$key"
}

# nfs_csi::podman_import TAR REF KEY [PODMAN-IMPORT-FLAGS...]: import TAR as
# REF unless podman already has REF from a TAR with this KEY (a label).
nfs_csi::podman_import() {
  local tar=$1 ref=$2 key=$3
  shift 3
  [[ $(podman image inspect --format '{{index .Labels "io.nfs-csi.base-key"}}' "$ref" 2>/dev/null) == "$key" ]] && return 0
  podman import --quiet "$@" --change "LABEL io.nfs-csi.base-key=$key" "$tar" "$ref" >/dev/null
}

nfs_csi::podman_image() {
  local image=$1 tag=$2 release go debkey gokey key out t0=$SECONDS
  command -v podman >/dev/null || { nfs_csi::image_log "podman is missing: apt-get install -y podman mmdebstrap"; return 1; }
  release=$(nfs_csi::dockerfile_arg DEBIAN_RELEASE)
  go=$(nfs_csi::dockerfile_arg GO_VERSION)
  [[ -n $release && -n $go ]] || { nfs_csi::image_log "Dockerfile: no ARG DEBIAN_RELEASE= or ARG GO_VERSION= default"; return 1; }
  debkey=$(nfs_csi::podman_base_debian "$release") || return 1
  gokey=$(nfs_csi::podman_base_golang "$go" "$release" "$debkey") || return 1

  key=$({
    printf '%s\n' "$image:$tag" "$VERSION" "$GIT_COMMIT" "$debkey" "$gokey" "${PODMAN_BUILD_ARGS:-}"
    cd "$NFS_CSI_ROOT" && nfs_csi::context_files | while IFS= read -r f; do
      printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$f"
    done
    cat "$NFS_CSI_ROOT/Dockerfile" "$NFS_CSI_ROOT/.dockerignore" | sha256sum
  } | sha256sum | cut -c1-16)
  out=$NFS_CSI_IMAGES/nfs-csi-$key.oci.tar
  if [[ -f $out ]]; then
    nfs_csi::image_log "$image:$tag: cached ($out)"
    echo "$out"
    return 0
  fi
  local arch
  arch=$(go env GOARCH) || return 1
  nfs_csi::image_log "podman build -t $image:$tag (linux/$arch) from $NFS_CSI_ROOT/Dockerfile"
  # BuildKit sets TARGETOS/TARGETARCH itself; podman 4.3 does not. Bases are
  # local only (--pull=never); the build stage needs the Go module proxy.
  # shellcheck disable=SC2086 # PODMAN_BUILD_ARGS is a list of words
  podman build --network=host --pull=never \
    --build-arg TARGETOS=linux --build-arg TARGETARCH="$arch" --build-arg TARGETVARIANT= \
    --build-arg "VERSION=$VERSION" --build-arg "GIT_COMMIT=$GIT_COMMIT" --build-arg "BUILD_DATE=$BUILD_DATE" \
    ${PODMAN_BUILD_ARGS:-} --tag "$image:$tag" "$NFS_CSI_ROOT" >&2 || return 1
  local built=$SECONDS
  # What the driver runs in the image, checked before the archive is saved:
  # mount.nfs, and the transport names it looks up for NFSv3 (an image
  # without /etc/protocols failed every NFSv3 mount with "Protocol not
  # supported" while NFSv4 worked).
  # (podman image mount, not podman run: runc here cannot set the
  # container's open-files limit.)
  local rootfs ok=1
  rootfs=$(podman image mount "$image:$tag") || return 1
  [[ -x $rootfs/sbin/mount.nfs && -s $rootfs/etc/netconfig ]] &&
    grep -q '^tcp[[:space:]]' "$rootfs/etc/protocols" && grep -q '^udp[[:space:]]' "$rootfs/etc/protocols" || ok=0
  podman image unmount "$image:$tag" >/dev/null
  [[ $ok == 1 ]] || { nfs_csi::image_log "$image:$tag: mount.nfs, /etc/netconfig or /etc/protocols (tcp, udp) missing in the image: NFSv3 mounts would fail"; return 1; }
  rm -f "$out.tmp"
  podman save --quiet --format oci-archive -o "$out.tmp" "$image:$tag" >&2 || { rm -f "$out.tmp"; return 1; }
  mv -f "$out.tmp" "$out" || return 1
  # Every commit makes a new archive: keep the three newest.
  ls -t "$NFS_CSI_IMAGES"/nfs-csi-*.oci.tar 2>/dev/null | tail -n +4 | xargs -r rm -f
  nfs_csi::image_log "$image:$tag: built in $((built - t0))s, saved in $((SECONDS - built))s: $out"
  echo "$out"
}
