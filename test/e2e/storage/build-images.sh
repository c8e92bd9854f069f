#!/usr/bin/env bash
# Build, once, the images that the Kubernetes storage test suite (e2e.test,
# test/e2e/storage/run.sh) runs its pods from, under the exact references
# e2e.test v1.37.2 asks for (k8s.io/kubernetes test/utils/image/manifest.go),
# and cache them as OCI archives beside test/e2e/build-images.sh's:
#
#   ${NFS_CSI_IMAGES:-$HOME/.cache/nfs-csi/images}/<name>-<key>.oci.tar
#
# No registry is reachable, so all are made here from one small root file
# system: Debian's static busybox as /bin/busybox with a link for every
# applet, /etc/passwd and /etc/group (root, nobody, user 1000 as in agnhost's
# image), /tmp.
#   - e2e-test-images/busybox: that, CMD sh (what GetDefaultTestImage gives);
#   - e2e-test-images/nginx, e2e-test-images/glibc-dns-testing: the same
#     root: the volumes suite's exec test and the multivolume suite's pods
#     only run shell commands in them (their own Command), never nginx or
#     glibc's resolver;
#   - e2e-test-images/agnhost: the same plus /agnhost, built from
#     k8s.io/kubernetes/test/images/agnhost by build-bins.sh --e2e-test,
#     ENTRYPOINT /agnhost, CMD pause, as upstream.
# Appends "REFERENCE ARCHIVE" lines to LIST (the list build-images.sh wrote,
# which the real node imports into containerd).
#
# Usage: test/e2e/storage/build-images.sh LIST
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
list=${1:?usage: $0 LIST}
IMAGES=${NFS_CSI_IMAGES:-${HOME:?HOME is not set}/.cache/nfs-csi/images}
bins=$("$root/test/e2e/build-bins.sh" --print-dir)
kube=$(sed -n 's/^KUBE_VERSION=//p' "$root/test/e2e/build-bins.sh")
agnhost=$bins/agnhost-$kube/agnhost
# The references e2e.test v1.37.2 uses (registry.k8s.io/e2e-test-images is
# its PromoterE2eRegistry).
REG=registry.k8s.io/e2e-test-images
BUSYBOX_REF=$REG/busybox:1.37.0-2
NGINX_REF=$REG/nginx:1.27.0-2
GLIBC_REF=$REG/glibc-dns-testing:2.1.1
AGNHOST_REF=$REG/agnhost:2.66.1

command -v podman >/dev/null || { echo "storage/build-images: podman is missing: apt-get install -y podman" >&2; exit 1; }
[[ -x /bin/busybox ]] || { echo "storage/build-images: /bin/busybox is missing: apt-get install -y busybox-static" >&2; exit 1; }
[[ -x $agnhost ]] || { echo "storage/build-images: $agnhost is missing: run test/e2e/build-bins.sh --e2e-test" >&2; exit 1; }
mkdir -p "$IMAGES"
exec 9>"$IMAGES/.lock-storage"
flock 9
TMP=$(mktemp -d "$IMAGES/.tmp-storage-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

START=$SECONDS
say() { printf '[storage/build-images %4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }

# rootfs DIR [AGNHOST]: the busybox root file system, with /agnhost if given.
rootfs() {
	local dir=$1 a
	mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/tmp" "$dir/root"
	chmod 1777 "$dir/tmp"
	cp /bin/busybox "$dir/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		[[ -e $dir/$a ]] || ln -s /bin/busybox "$dir/$a"
	done
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
		'user-defined-in-image:x:1000:1000::/tmp:/bin/sh' >"$dir/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'user-defined-in-image:x:1000:' \
		'group-defined-in-image:x:50000:user-defined-in-image' >"$dir/etc/group"
	if (($# > 1)); then cp "$2" "$dir/agnhost"; fi
}

# image REF ROOTFS CHANGE...: import ROOTFS as REF with the Dockerfile
# instructions CHANGE (podman import --change), saved as an OCI archive keyed
# by the root's content and the instructions. Prints "REF ARCHIVE".
image() {
	local ref=$1 dir=$2 key out name t0=$SECONDS
	shift 2
	local -a changes=()
	local c
	for c in "$@"; do changes+=(--change "$c"); done
	name=${ref##*/}
	name=${name%%:*}
	tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$TMP/$name.tar" .
	key=$(printf '%s\n%s\n%s\n' "$ref" "$*" "$(sha256sum <"$TMP/$name.tar")" | sha256sum | cut -c1-16)
	out=$IMAGES/e2e-$name-$key.oci.tar
	if [[ -f $out ]]; then
		say "$ref: cached"
	else
		podman import --quiet "${changes[@]}" "$TMP/$name.tar" "$ref" >/dev/null
		podman save --quiet --format oci-archive -o "$out.tmp" "$ref"
		mv -f "$out.tmp" "$out"
		say "$ref: built in $((SECONDS - t0))s"
	fi
	echo "$ref $out"
}

rootfs "$TMP/busybox"
rootfs "$TMP/agnhost" "$agnhost"
{
	image "$BUSYBOX_REF" "$TMP/busybox" 'CMD ["sh"]'
	image "$NGINX_REF" "$TMP/busybox" 'CMD ["sh"]'
	image "$GLIBC_REF" "$TMP/busybox" 'CMD ["sh"]'
	image "$AGNHOST_REF" "$TMP/agnhost" 'ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]'
} >>"$list"
say "done: appended to $list"
