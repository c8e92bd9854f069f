#!/usr/bin/env bash
# Build, once, the binaries the end-to-end test bed needs, from the Go module
# proxy only (no GitHub, no container registry), and cache them outside the
# repo keyed by version:
#
#   ${NFS_CSI_E2E_BIN:-$HOME/.cache/nfs-csi/e2e}/<component>-<version>/<binary>
#
# A binary that is already in the cache is not rebuilt, so only the first run
# pays the cold build (about 35 minutes on 2 cores). See test/e2e/README.md.
# While a step runs it says every 30 s (NFS_CSI_E2E_HEARTBEAT seconds) that it
# is still building, so a long build is not mistaken for a hang.
#
# Usage: test/e2e/build-bins.sh [--print-dir | --e2e-test]
# --e2e-test also builds the Kubernetes e2e.test binary and agnhost
# (<component> e2e.test and agnhost), for test/e2e/storage.
set -euo pipefail

ETCD_VERSION=v3.7.3
KUBE_VERSION=v1.37.2
PROVISIONER_VERSION=v6.3.0
ATTACHER_VERSION=v4.13.0
REGISTRAR_VERSION=v2.17.0
LIVENESSPROBE_VERSION=v2.19.0
RESIZER_VERSION=v2.3.0
SNAPSHOTTER_VERSION=v8.7.0

ETCD_MODULE=go.etcd.io/etcd/server/v3
KUBE_MODULE=k8s.io/kubernetes
PROVISIONER_MODULE=github.com/kubernetes-csi/external-provisioner/v6
ATTACHER_MODULE=github.com/kubernetes-csi/external-attacher/v4
# The proxy serves external-resizer only under its /v2 path (v2.2.0 and up).
RESIZER_MODULE=github.com/kubernetes-csi/external-resizer/v2
# csi-snapshotter and snapshot-controller; the snapshot CRDs are in its
# client module, github.com/kubernetes-csi/external-snapshotter/client/v8.
SNAPSHOTTER_MODULE=github.com/kubernetes-csi/external-snapshotter/v8

# node-driver-registrar and livenessprobe are not on the Go module proxy: their
# release sources, with vendor/, are release archives in this directory (see
# its README), checked against these sha256 sums.
# By default the project's shared/ directory, which lies beside the checkout;
# a clone made elsewhere (git clone . /tmp/ci, as the developers' guide runs
# CI) finds it beside the repository it was cloned from: a machine's first
# run failed here when only /work/shared had it.
third_party_dir() {
	local repo dir origin
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	dir=$repo
	# A clone of a clone: follow local origins a few steps.
	for _ in 1 2 3 4; do
		if [[ -d $dir/../shared/third_party ]]; then (cd "$dir/../shared/third_party" && pwd); return; fi
		origin=$(git -C "$dir" config --get remote.origin.url 2>/dev/null) || break
		origin=${origin#file://}
		[[ $origin == /* && -d $origin ]] || break
		dir=$origin
	done
	echo "$repo/../shared/third_party"
}
THIRD_PARTY=${NFS_CSI_THIRD_PARTY:-$(third_party_dir)}
REGISTRAR_SHA256=e0e5d1b01197d1e9627b592c996dd5ddd86bbf90a7ed8ba3831d6acb968d01e0
LIVENESSPROBE_SHA256=85fdf77742cb66498f9b57c23aa5db168d3df86074a4a6c787155409bb3345a2

BIN_DIR=${NFS_CSI_E2E_BIN:-${HOME:?HOME is not set}/.cache/nfs-csi/e2e}

usage() {
	echo "usage: $0 [--print-dir | --e2e-test]" >&2
	exit 2
}

# --e2e-test: also build e2e.test and agnhost, for the storage suite.
E2E_TEST=
case $# in
0) ;;
1) case $1 in
	--print-dir) echo "$BIN_DIR"; exit 0 ;;
	--e2e-test) E2E_TEST=1 ;;
	*) usage ;;
	esac ;;
*) usage ;;
esac

command -v go >/dev/null || { echo "build-bins: go is not on PATH" >&2; exit 1; }

# Everything is built outside the repo; never let the repo's go.mod, a go.work
# or the caller's GOFLAGS leak into the throwaway modules.
export GOWORK=off CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

mkdir -p "$BIN_DIR"
# cached COMPONENT VERSION BINARY: true if the binary is already in the cache.
cached() { [[ -x $BIN_DIR/$1-$2/$3 ]]; }
# The snapshot CRDs the bed applies (framework/snapshots.go), copied from
# the client module's config/crd into the cache beside the binaries. Not the
# group-snapshot CRDs: the driver has no group snapshots, and both
# snapshot-controller and csi-snapshotter run without them (they log that
# they disable the feature).
SNAPSHOT_CRDS=(snapshot.storage.k8s.io_volumesnapshotclasses.yaml
	snapshot.storage.k8s.io_volumesnapshotcontents.yaml
	snapshot.storage.k8s.io_volumesnapshots.yaml)
SNAPSHOT_CLIENT_MODULE=github.com/kubernetes-csi/external-snapshotter/client/v8
crds_cached() {
	local f
	for f in "${SNAPSHOT_CRDS[@]}"; do [[ -f $BIN_DIR/snapshot-crds-$SNAPSHOTTER_VERSION/$f ]] || return 1; done
}
# csi-attacher, csi-resizer, csi-snapshotter and snapshot-controller (four of
# the five sidecars on the module proxy) are built together in one throwaway
# module that requires each release and pins the Kubernetes staging repos
# (k8s.io/api, k8s.io/client-go, ...) to KUBE_VERSION's tag, as the control
# plane is: those libraries compile once, for them and the control plane.
# Built each in its own module (their go.mod files pin k8s.io/* v0.37.0 and
# v0.37.1 and different grpc versions), they compiled them again for each:
# about 290 s each cold, 863 s for the four (measured 2026-12-02). Their own
# code is their release's; their libraries are the newest that any of them
# or the control plane needs (Go's minimal version selection).
# csi-provisioner v6.3.0 stays in its own module (build_sidecar): its code
# does not compile against k8s.io/client-go v0.37.
SIDECARS=(csi-attacher csi-resizer csi-snapshotter snapshot-controller)
# What a sidecar's cache directory records in .build; one built otherwise
# (each in its own module, before 2026-12-02) is built again.
SIDECAR_BUILD="one module, k8s.io/* v0.${KUBE_VERSION#v1.}"

# sidecar_module SIDECAR: "MODULE VERSION" of one of SIDECARS.
sidecar_module() {
	case $1 in
	csi-attacher) echo "$ATTACHER_MODULE $ATTACHER_VERSION" ;;
	csi-resizer) echo "$RESIZER_MODULE $RESIZER_VERSION" ;;
	csi-snapshotter | snapshot-controller) echo "$SNAPSHOTTER_MODULE $SNAPSHOTTER_VERSION" ;;
	*) echo "build-bins: unknown sidecar $1" >&2; return 1 ;;
	esac
}

# sidecar_cached SIDECAR: true if its binary is cached, built as SIDECAR_BUILD.
sidecar_cached() {
	local m v
	read -r m v <<<"$(sidecar_module "$1")"
	cached "$1" "$v" "$1" && [[ $(cat "$BIN_DIR/$1-$v/.build" 2>/dev/null) == "$SIDECAR_BUILD" ]]
}

# Binaries are moved into place whole, so when every one is there a run
# needs no lock: it does not wait for another run's build of something else
# (the storage suite's e2e.test, say).
all_cached() {
	local b
	cached etcd "$ETCD_VERSION" etcd || return 1
	for b in "${KUBE_BINS[@]}"; do cached "$b" "$KUBE_VERSION" "$b" || return 1; done
	cached csi-provisioner "$PROVISIONER_VERSION" csi-provisioner || return 1
	for b in "${SIDECARS[@]}"; do sidecar_cached "$b" || return 1; done
	crds_cached &&
		cached node-driver-registrar "$REGISTRAR_VERSION" csi-node-driver-registrar &&
		cached livenessprobe "$LIVENESSPROBE_VERSION" livenessprobe || return 1
	[[ -z $E2E_TEST ]] || { cached e2e.test "$KUBE_VERSION" e2e.test && cached agnhost "$KUBE_VERSION" agnhost; }
}
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
if ! all_cached; then
	# One build at a time: a second run waits, then finds everything cached.
	exec 9>"$BIN_DIR/.lock"
	flock 9
	# Leftovers of a run that was killed (we hold the lock, so no one else owns them).
	rm -rf "$BIN_DIR"/.tmp-*
fi
# Temp dir on the same file system as the cache, so the final mv is a rename.
TMP=$(mktemp -d "$BIN_DIR/.tmp-XXXXXX")
trap 'chmod -R u+w "$TMP" 2>/dev/null || true; rm -rf "$TMP"' EXIT
LOG_DIR=$BIN_DIR/.logs
mkdir -p "$LOG_DIR"

START=$SECONDS
say() { printf '[build-bins %4ds] %s\n' "$((SECONDS - START))" "$*"; }

# install_bin COMPONENT VERSION FILE: move a freshly built FILE into the cache.
install_bin() {
	local dest=$BIN_DIR/$1-$2
	mkdir -p "$dest"
	mv -f "$3" "$dest/$(basename "$3")"
}

# What is being built and since when (SECONDS), for the heartbeat.
BUILDING=
BUILDING_T0=0
HEARTBEAT=${NFS_CSI_E2E_HEARTBEAT:-30}

# heartbeat OWNER: every HEARTBEAT seconds, say that BUILDING is still being
# built. Run in the background; it stops when killed, and on its own once
# OWNER (the shell running the step) is gone, e.g. after Ctrl-C, which a
# background job of a script ignores. Its sleep does not hold our stdout, so a
# pipe reading build-bins.sh gets EOF as soon as the script ends.
heartbeat() {
	local owner=$1 s
	while sleep "$HEARTBEAT" </dev/null >/dev/null 2>&1 && kill -0 "$owner" 2>/dev/null; do
		s=$((SECONDS - BUILDING_T0))
		say "still building $BUILDING... $((s / 60))m$(printf '%02d' $((s % 60)))s"
	done
}

# run LOG CMD...: run CMD with its output in LOG, with a heartbeat on stdout
# while it runs; on failure show the tail.
run() {
	local log=$1 hb
	shift
	echo "+ $*" >>"$log"
	heartbeat "$BASHPID" &
	hb=$!
	if ! "$@" >>"$log" 2>&1; then
		kill "$hb" 2>/dev/null || true
		echo "build-bins: failed: $*" >&2
		echo "---- last lines of $log ----" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
	kill "$hb" 2>/dev/null || true
	wait "$hb" 2>/dev/null || true
}

# mod_field MODULE@VERSION FIELD: a string field of `go mod download -json`.
mod_field() {
	go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"
}

# new_module DIR NAME: an empty throwaway module.
new_module() {
	mkdir -p "$1"
	(cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

build_etcd() {
	local c=etcd v=$ETCD_VERSION
	if cached $c $v etcd; then say "$c $v: cached"; return; fi
	local t0=$SECONDS log=$LOG_DIR/$c-$v.log mod=$TMP/etcd-mod
	BUILDING="$c $v" BUILDING_T0=$t0
	: >"$log"
	say "$c $v: building from $ETCD_MODULE (log: $log)"
	new_module "$mod" nfs-csi-e2e/etcd
	cat >"$mod/tools.go" <<EOF
//go:build tools

package tools

import _ "$ETCD_MODULE"
EOF
	(
		cd "$mod"
		run "$log" go mod edit -require="$ETCD_MODULE@$ETCD_VERSION"
		run "$log" go mod tidy
		run "$log" go build -trimpath -o "$TMP/out-etcd/etcd" "$ETCD_MODULE"
	)
	install_bin $c $v "$TMP/out-etcd/etcd"
	say "$c $v: done in $((SECONDS - t0))s"
}

# staging_replaces: -replace flags for `go mod edit` that pin each
# Kubernetes staging repo to its published tag for KUBE_VERSION. The staging
# repos are the k8s.io/* modules that k8s.io/kubernetes requires at v0.0.0,
# plus those it replaces with ./staging/... (two sample repos are only
# replaced, not required); their tag is v0.<minor>.<patch> of the release.
# Read from k8s.io/kubernetes' go.mod in the module cache; run in a module.
staging_replaces() {
	local v=$KUBE_VERSION gomod
	gomod=$(mod_field "$KUBE_MODULE@$v" GoMod)
	[[ -f $gomod ]] || { echo "build-bins: no go.mod for $KUBE_MODULE@$v" >&2; return 1; }
	local staging_version=v0.${v#v1.}
	local -a staging
	mapfile -t staging < <({
		sed -n 's/^[[:space:]]*\(k8s\.io\/[^[:space:]]*\)[[:space:]]\{1,\}v0\.0\.0\([[:space:]].*\)\{0,1\}$/\1/p' "$gomod"
		sed -n 's/^[[:space:]]*\(k8s\.io\/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\/staging\/.*$/\1/p' "$gomod"
	} | sort -u)
	((${#staging[@]})) || { echo "build-bins: found no v0.0.0 staging repos in $gomod" >&2; return 1; }
	local s
	for s in "${staging[@]}"; do echo "-replace=$s=$s@$staging_version"; done
}

# tools_file FILE PACKAGE...: a //go:build tools file importing each PACKAGE,
# so that `go mod tidy` keeps what they need.
tools_file() {
	local f=$1 p
	shift
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
		printf ')\n'
	} >"$f"
}

# kube_module DIR NAME LOG PACKAGE...: a throwaway module in DIR that requires
# k8s.io/kubernetes KUBE_VERSION, with a tools file importing each PACKAGE,
# tidied, ready to build them.
kube_module() {
	local mod=$1 name=$2 log=$3
	shift 3
	new_module "$mod" "$name"
	local -a edits
	mapfile -t edits < <(cd "$mod" && staging_replaces) && ((${#edits[@]})) || exit 1
	say "  replacing ${#edits[@]} staging repos with v0.${KUBE_VERSION#v1.}"
	edits+=(-require="$KUBE_MODULE@$KUBE_VERSION")
	tools_file "$mod/tools.go" "$@"
	(
		cd "$mod"
		run "$log" go mod edit "${edits[@]}"
		run "$log" go mod tidy
	)
}

# kube_ldflags: the -X flags that stamp KUBE_VERSION into a Kubernetes binary;
# without them they report v0.0.0-master and `kubectl version` fails.
kube_ldflags() {
	local v=$KUBE_VERSION minor=${KUBE_VERSION#v1.} ldflags="" pkg
	minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	echo "${ldflags# }"
}

build_kube() {
	local v=$KUBE_VERSION b missing=()
	for b in "${KUBE_BINS[@]}"; do
		if cached "$b" "$v" "$b"; then say "$b $v: cached"; else missing+=("$b"); fi
	done
	((${#missing[@]})) || return 0
	local t0=$SECONDS log=$LOG_DIR/kubernetes-$v.log mod=$TMP/kube-mod
	BUILDING="${missing[*]} $v" BUILDING_T0=$t0
	: >"$log"
	say "${missing[*]} $v: building from $KUBE_MODULE (log: $log)"
	local -a pkgs=()
	for b in "${missing[@]}"; do pkgs+=("$KUBE_MODULE/cmd/$b"); done
	kube_module "$mod" nfs-csi-e2e/kube "$log" "${pkgs[@]}"
	(
		cd "$mod"
		run "$log" go build -trimpath -ldflags "$(kube_ldflags)" -o "$TMP/out-kube/" "${pkgs[@]}"
	)
	for b in "${missing[@]}"; do install_bin "$b" "$v" "$TMP/out-kube/$b"; done
	say "${missing[*]} $v: done in $((SECONDS - t0))s"
}

# build_e2e_test: the Kubernetes end-to-end test binary (test/e2e, with the
# external-driver storage suites behind -storage.testdriver) and agnhost (the
# test image's one binary, test/images/agnhost), which only the storage
# suite needs (test/e2e/storage/run.sh). About 6 minutes with a warm Go build
# cache.
build_e2e_test() {
	local v=$KUBE_VERSION
	if cached e2e.test "$v" e2e.test && cached agnhost "$v" agnhost; then
		say "e2e.test, agnhost $v: cached"
		return
	fi
	local t0=$SECONDS log=$LOG_DIR/e2e.test-$v.log mod=$TMP/kube-e2e-mod
	BUILDING="e2e.test, agnhost $v" BUILDING_T0=$t0
	: >"$log"
	say "e2e.test, agnhost $v: building from $KUBE_MODULE (log: $log)"
	kube_module "$mod" nfs-csi-e2e/kube-e2e "$log" \
		"$KUBE_MODULE/test/e2e" "$KUBE_MODULE/test/e2e/storage" "$KUBE_MODULE/test/e2e/storage/external" \
		"$KUBE_MODULE/test/images/agnhost"
	(
		cd "$mod"
		run "$log" go test -c -trimpath -ldflags "$(kube_ldflags)" -o "$TMP/out-e2e/e2e.test" "$KUBE_MODULE/test/e2e"
		run "$log" go build -trimpath -ldflags "$(kube_ldflags)" -o "$TMP/out-e2e/agnhost" "$KUBE_MODULE/test/images/agnhost"
	)
	install_bin e2e.test "$v" "$TMP/out-e2e/e2e.test"
	install_bin agnhost "$v" "$TMP/out-e2e/agnhost"
	say "e2e.test, agnhost $v: done in $((SECONDS - t0))s"
}

build_sidecars() {
	local c m v missing=()
	for c in "${SIDECARS[@]}"; do
		read -r m v <<<"$(sidecar_module "$c")"
		if sidecar_cached "$c"; then say "$c $v: cached"; else missing+=("$c"); fi
	done
	((${#missing[@]})) || return 0
	local t0=$SECONDS log=$LOG_DIR/sidecars-$KUBE_VERSION.log mod=$TMP/sidecars-mod
	BUILDING="${missing[*]}" BUILDING_T0=$t0
	: >"$log"
	say "${missing[*]}: building in one module with k8s.io/* v0.${KUBE_VERSION#v1.} (log: $log)"
	new_module "$mod" nfs-csi-e2e/sidecars
	local -a edits pkgs=()
	mapfile -t edits < <(cd "$mod" && staging_replaces) && ((${#edits[@]})) || exit 1
	for c in "${missing[@]}"; do
		read -r m v <<<"$(sidecar_module "$c")"
		edits+=(-require="$m@$v")
		pkgs+=("$m/cmd/$c")
	done
	# external-snapshotter's go.mod replaces its client module with ./client,
	# which only applies when it is the main module: require the client
	# module of the same release instead.
	edits+=(-require="$SNAPSHOT_CLIENT_MODULE@$SNAPSHOTTER_VERSION")
	tools_file "$mod/tools.go" "${pkgs[@]}"
	(
		cd "$mod"
		run "$log" go mod edit "${edits[@]}"
		run "$log" go mod tidy
		for c in "${missing[@]}"; do
			read -r m v <<<"$(sidecar_module "$c")"
			run "$log" go build -trimpath -ldflags "-X main.version=$v" -o "$TMP/out-$c/$c" "$m/cmd/$c"
		done
	)
	for c in "${missing[@]}"; do
		read -r m v <<<"$(sidecar_module "$c")"
		install_bin "$c" "$v" "$TMP/out-$c/$c"
		echo "$SIDECAR_BUILD" >"$BIN_DIR/$c-$v/.build"
	done
	say "${missing[*]}: done in $((SECONDS - t0))s"
}

# build_sidecar COMPONENT MODULE VERSION: build ./cmd/COMPONENT in a writable
# copy of the module, so that its own go.mod and go.sum apply. For
# csi-provisioner v6.3.0, which does not compile against k8s.io/client-go
# v0.37 (its go.mod pins v0.36.1; CSIStorageCapacityInformer lacks
# TypedInformer there).
build_sidecar() {
	local c=$1 module=$2 v=$3
	if cached "$c" "$v" "$c"; then say "$c $v: cached"; return; fi
	local t0=$SECONDS log=$LOG_DIR/$c-$v.log src=$TMP/src-$c dir
	BUILDING="$c $v" BUILDING_T0=$t0
	: >"$log"
	say "$c $v: building from $module (log: $log)"
	dir=$(cd "$TMP" && mod_field "$module@$v" Dir)
	[[ -d $dir ]] || { echo "build-bins: no source dir for $module@$v" >&2; exit 1; }
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	(
		cd "$src"
		run "$log" go build -trimpath -ldflags "-X main.version=$v" -o "$TMP/out-$c/$c" "./cmd/$c"
	)
	install_bin "$c" "$v" "$TMP/out-$c/$c"
	say "$c $v: done in $((SECONDS - t0))s"
}

# build_vendored COMPONENT VERSION BINARY SHA256: build ./cmd/BINARY of the
# release archive THIRD_PARTY/COMPONENT-VERSION.tar.gz offline, from its
# vendor/ tree.
build_vendored() {
	local c=$1 v=$2 b=$3 sum=$4
	if cached "$c" "$v" "$b"; then say "$c $v: cached"; return; fi
	local t0=$SECONDS log=$LOG_DIR/$c-$v.log src=$TMP/src-$c archive=$THIRD_PARTY/$c-$v.tar.gz
	BUILDING="$c $v" BUILDING_T0=$t0
	: >"$log"
	say "$c $v: building from $archive, -mod=vendor (log: $log)"
	[[ -f $archive ]] || { echo "build-bins: $archive is missing (looked beside this checkout and beside the repository it was cloned from): set NFS_CSI_THIRD_PARTY to the directory of the $c release archive" >&2; exit 1; }
	[[ $(sha256sum <"$archive") == "$sum  -" ]] || { echo "build-bins: $archive: sha256 is not $sum" >&2; exit 1; }
	mkdir -p "$src"
	tar -xzf "$archive" -C "$src" --strip-components=1
	(
		cd "$src"
		GOFLAGS="-mod=vendor -buildvcs=false" run "$log" go build -trimpath -ldflags "-X main.version=$v" -o "$TMP/out-$c/$b" "./cmd/$b"
	)
	install_bin "$c" "$v" "$TMP/out-$c/$b"
	say "$c $v: done in $((SECONDS - t0))s"
}

not_cached=()
cached etcd $ETCD_VERSION etcd || not_cached+=(etcd)
for b in "${KUBE_BINS[@]}"; do cached "$b" $KUBE_VERSION "$b" || not_cached+=("$b"); done
cached csi-provisioner $PROVISIONER_VERSION csi-provisioner || not_cached+=(csi-provisioner)
for b in "${SIDECARS[@]}"; do sidecar_cached "$b" || not_cached+=("$b"); done
crds_cached || not_cached+=(snapshot-crds)
cached node-driver-registrar $REGISTRAR_VERSION csi-node-driver-registrar || not_cached+=(node-driver-registrar)
cached livenessprobe $LIVENESSPROBE_VERSION livenessprobe || not_cached+=(livenessprobe)
if ((${#not_cached[@]} == 0)); then
	say "all binaries cached in $BIN_DIR"
else
	say "not cached yet: ${not_cached[*]}; building into $BIN_DIR"
	say "the first build takes about 35 minutes on 2 cores (about 1 minute if the Go build cache is warm),"
	say "and happens only once: later runs find the binaries cached"
fi

build_etcd
build_kube
build_sidecar csi-provisioner "$PROVISIONER_MODULE" "$PROVISIONER_VERSION"
build_sidecars
# copy_snapshot_crds: SNAPSHOT_CRDS from the client module's config/crd
# (the module zip as the proxy serves it) into snapshot-crds-<version>.
copy_snapshot_crds() {
	local c=snapshot-crds v=$SNAPSHOTTER_VERSION dir f
	if crds_cached; then say "$c $v: cached"; return; fi
	dir=$(cd "$TMP" && mod_field "$SNAPSHOT_CLIENT_MODULE@$v" Dir)
	[[ -d $dir/config/crd ]] || { echo "build-bins: no config/crd in $SNAPSHOT_CLIENT_MODULE@$v ($dir)" >&2; exit 1; }
	mkdir -p "$TMP/out-$c"
	for f in "${SNAPSHOT_CRDS[@]}"; do
		[[ -f $dir/config/crd/$f ]] || { echo "build-bins: $SNAPSHOT_CLIENT_MODULE@$v has no config/crd/$f" >&2; exit 1; }
		cp "$dir/config/crd/$f" "$TMP/out-$c/$f"
		chmod u+w "$TMP/out-$c/$f"
	done
	for f in "${SNAPSHOT_CRDS[@]}"; do install_bin "$c" "$v" "$TMP/out-$c/$f"; done
	say "$c $v: copied from $SNAPSHOT_CLIENT_MODULE@$v/config/crd"
}
copy_snapshot_crds
build_vendored node-driver-registrar "$REGISTRAR_VERSION" csi-node-driver-registrar "$REGISTRAR_SHA256"
build_vendored livenessprobe "$LIVENESSPROBE_VERSION" livenessprobe "$LIVENESSPROBE_SHA256"
[[ -z $E2E_TEST ]] || build_e2e_test

say "versions:"
B=$BIN_DIR
"$B/etcd-$ETCD_VERSION/etcd" --version
apiserver_version=$("$B/kube-apiserver-$KUBE_VERSION/kube-apiserver" --version)
echo "$apiserver_version"
"$B/kube-controller-manager-$KUBE_VERSION/kube-controller-manager" --version
"$B/kube-scheduler-$KUBE_VERSION/kube-scheduler" --version
"$B/kubectl-$KUBE_VERSION/kubectl" version --client
"$B/kubelet-$KUBE_VERSION/kubelet" --version
"$B/csi-provisioner-$PROVISIONER_VERSION/csi-provisioner" --version
"$B/csi-attacher-$ATTACHER_VERSION/csi-attacher" --version
"$B/csi-resizer-$RESIZER_VERSION/csi-resizer" --version
"$B/csi-snapshotter-$SNAPSHOTTER_VERSION/csi-snapshotter" --version
"$B/snapshot-controller-$SNAPSHOTTER_VERSION/snapshot-controller" --version
"$B/node-driver-registrar-$REGISTRAR_VERSION/csi-node-driver-registrar" --version
echo
# livenessprobe has no --version flag; its cache directory names the tag.
echo "livenessprobe $LIVENESSPROBE_VERSION: $B/livenessprobe-$LIVENESSPROBE_VERSION/livenessprobe"
if [[ $apiserver_version != "Kubernetes $KUBE_VERSION" ]]; then
	echo "build-bins: kube-apiserver reports '$apiserver_version', want 'Kubernetes $KUBE_VERSION'" >&2
	exit 1
fi
say "done: $BIN_DIR"
