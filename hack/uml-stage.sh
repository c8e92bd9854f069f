#!/usr/bin/env bash
# Sourced by the scripts that run things inside user-mode Linux. The guest
# mounts tmpfs over /tmp and /run, so a checkout there (CI clones into /tmp)
# is invisible inside it. Then the built tree is copied to a staging
# directory under /var/tmp, keyed by the checkout's path, and UML_ROOT names
# it; otherwise UML_ROOT is the checkout itself. Call after building.
# NAME, when given, names a staging directory of its own: a run that goes on
# in the background (make test's e2e-node) keeps its copy while the next
# step stages again.
#   source hack/uml-stage.sh; nfs_csi::uml_stage "$root" [NAME]; ... "$UML_ROOT/bin/nfs-csi"
nfs_csi::uml_stage() {
	local root=$1 name=${2:-} stage
	case "$root" in
	/tmp | /tmp/* | /run | /run/*)
		stage=/var/tmp/nfs-csi-stage/$(printf '%s' "$root" | sha256sum | cut -c1-12)${name:+-$name}
		rm -rf "$stage"
		mkdir -p "$stage"
		tar -C "$root" --exclude=./.git --exclude=./_output/uml -cf - . | tar -C "$stage" -xf -
		echo "uml-stage: $root is hidden inside the guest (tmpfs on /tmp and /run); running from a copy in $stage" >&2
		UML_ROOT=$stage
		;;
	*) UML_ROOT=$root ;;
	esac
	export UML_ROOT
	export UML_RESULTS_DIR=${UML_RESULTS_DIR:-$UML_ROOT/_output/uml}
}
