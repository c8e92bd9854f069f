#!/usr/bin/env bash
# Sourced. nfs_csi::uml_artifacts ROOT builds, on the host (compiling inside
# UML would be slow), what a UML test run executes: bin/nfs-csi,
# _output/integration.test and the pinned csi-sanity, whose path it exports
# as CSI_SANITY. Returns non-zero when a build fails.
CSI_SANITY_VERSION=v5.6.0

nfs_csi::uml_artifacts() {
	local root=$1
	# shellcheck source=hack/tools.sh
	source "$root/hack/tools.sh" || return 1
	CSI_SANITY=$NFS_CSI_TOOLS/csi-sanity-$CSI_SANITY_VERSION/csi-sanity
	export CSI_SANITY
	nfs_csi::go_install "$(dirname "$CSI_SANITY")" "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION" || return 1
	nfs_csi::build_driver || return 1
	(cd "$root" && mkdir -p _output && go test -c -tags uml -o _output/integration.test ./test/integration)
}
