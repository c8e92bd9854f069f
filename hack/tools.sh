#!/usr/bin/env bash
# Shared helper: pinned tools for nfs-csi's packaging scripts. Source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
#   nfs_csi::helm; trap nfs_csi::cleanup EXIT
#   "$NFS_CSI_HELM" template ...     # helm, installed if missing
#   nfs_csi::qemu riscv64            # path to qemu-riscv64-static, installed if missing
#
# Tools are installed outside the repository, in a cache keyed by version:
#   ${NFS_CSI_TOOLS:-$HOME/.cache/nfs-csi/tools}/<tool>-<version>/
# and reused when present. Go tools come from the Go module proxy (go install
# with GOBIN); qemu-user comes from Debian (apt-get). Nothing else is fetched.
# Works on a fresh Debian 12 machine as root with only Go installed.

NFS_CSI_ROOT=${NFS_CSI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
NFS_CSI_TOOLS=${NFS_CSI_TOOLS:-${HOME:-/root}/.cache/nfs-csi/tools}

# Pinned versions.
NFS_CSI_HELM_VERSION=v3.22.0
# Helm's release build stamps its version and the Kubernetes version it
# assumes without a cluster (its client-go minor, 0.37 -> 1.37) with -ldflags;
# a bare `go install` would say "v3.22" and assume Kubernetes v1.20.0, which
# the chart's kubeVersion (>=1.26) refuses. nfs_csi::helm stamps the same.
NFS_CSI_HELM_K8S_MINOR=37
# Kubernetes version the scripts' helm template/lint pass (--kube-version), so
# that the rendering does not depend on how helm was built.
NFS_CSI_KUBE_VERSION=1.33.0
# The packaging checks (test/packaging, a Go module of their own) pin the Helm
# SDK, k8s.io/api and kustomize in test/packaging/go.mod.

nfs_csi::log() { echo "tools.sh: $*" >&2; }

# nfs_csi::go_install DIR PKG@VERSION [GO-INSTALL-FLAGS...]: go install into
# DIR (GOBIN). Prints nothing on stdout; returns go's status.
nfs_csi::go_install() {
  local dir=$1 pkg=$2; shift 2
  mkdir -p "$dir"
  # go install always runs, so that a changed version or flag takes effect;
  # with the binary and the build cache in place it only checks them.
  [[ -x $dir/$(basename "${pkg%@*}") ]] ||
    nfs_csi::log "installing ${pkg} into ${dir} (first time only; a few minutes)"
  # GOFLAGS from the caller (e.g. -mod=vendor) must not leak into the install.
  GOBIN=$dir GOFLAGS= CGO_ENABLED=0 go install "$@" "$pkg" >&2
}

# nfs_csi::helm: installs helm of the pinned version if missing and sets, in
# the calling shell (do not call it in $(...)):
#   NFS_CSI_HELM       path of the helm binary
#   HELM_CACHE_HOME, HELM_CONFIG_HOME, HELM_DATA_HOME  under NFS_CSI_HELM_HOME,
#                      a private temporary directory, so that helm never reads
#                      the user's repositories or reaches the network
# Remove "$NFS_CSI_HELM_HOME" when done (nfs_csi::cleanup does).
nfs_csi::helm() {
  local dir=$NFS_CSI_TOOLS/helm-$NFS_CSI_HELM_VERSION h=helm.sh/helm/v3
  NFS_CSI_HELM=$dir/helm
  # Reuse the cached binary only if it is the stamped build of the pin.
  if [[ $("$NFS_CSI_HELM" version --template '{{.Version}}' 2>/dev/null) != "$NFS_CSI_HELM_VERSION" ]]; then
    nfs_csi::go_install "$dir" "$h/cmd/helm@${NFS_CSI_HELM_VERSION}" -trimpath -ldflags "-s -w \
      -X $h/internal/version.version=${NFS_CSI_HELM_VERSION} \
      -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=${NFS_CSI_HELM_K8S_MINOR} \
      -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=${NFS_CSI_HELM_K8S_MINOR}" || return 1
  fi
  if [[ -z ${NFS_CSI_HELM_HOME:-} ]]; then
    NFS_CSI_HELM_HOME=$(mktemp -d "${TMPDIR:-/tmp}/nfs-csi-helm.XXXXXX") || return 1
  fi
  export HELM_CACHE_HOME=$NFS_CSI_HELM_HOME/cache
  export HELM_CONFIG_HOME=$NFS_CSI_HELM_HOME/config
  export HELM_DATA_HOME=$NFS_CSI_HELM_HOME/data
}

# nfs_csi::cleanup: removes what nfs_csi::helm created. For an EXIT trap.
nfs_csi::cleanup() {
  [[ -n ${NFS_CSI_HELM_HOME:-} ]] && rm -rf "$NFS_CSI_HELM_HOME"
  NFS_CSI_HELM_HOME=
}

# nfs_csi::qemu ARCH: path of qemu-ARCH-static (ARCH as qemu names it:
# riscv64, aarch64, arm, ppc64le, s390x). Installs Debian's qemu-user-static
# when missing. binfmt_misc is not needed: callers run "qemu-ARCH-static BIN".
nfs_csi::qemu() {
  local arch=$1 bin
  bin=$(command -v "qemu-${arch}-static" || true)
  if [[ -z $bin ]]; then
    nfs_csi::log "installing qemu-user-static with apt-get (qemu-${arch}-static missing)"
    if [[ $(id -u) -ne 0 ]]; then
      nfs_csi::log "not root: run 'apt-get install -y qemu-user-static' as root"
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq qemu-user-static >&2 || return 1
    bin=$(command -v "qemu-${arch}-static" || true)
    [[ -n $bin ]] || { nfs_csi::log "qemu-${arch}-static still missing"; return 1; }
  fi
  echo "$bin"
}

# nfs_csi::version_env: VERSION, GIT_COMMIT, BUILD_DATE and LDFLAGS as the
# Makefile computes them, for scripts run directly rather than through make.
# Values already in the environment (make exports them) win.
nfs_csi::version_env() {
  local pkg=github.com/example/nfs-csi
  : "${VERSION:=$(git -C "$NFS_CSI_ROOT" describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}"
  : "${GIT_COMMIT:=$(git -C "$NFS_CSI_ROOT" rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)}"
  : "${BUILD_DATE:=$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
  : "${LDFLAGS:=-s -w -X ${pkg}/pkg/driver.driverVersion=${VERSION} -X ${pkg}/pkg/driver.gitCommit=${GIT_COMMIT} -X ${pkg}/pkg/driver.buildDate=${BUILD_DATE}}"
  export VERSION GIT_COMMIT BUILD_DATE LDFLAGS
}

# nfs_csi::build_driver: bin/nfs-csi for this machine, version-stamped as
# the Makefile's build target stamps it.
nfs_csi::build_driver() {
  nfs_csi::version_env
  (cd "$NFS_CSI_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o bin/nfs-csi ./cmd/nfs-csi)
}

