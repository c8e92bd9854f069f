#!/usr/bin/env bash
# Runs csi-sanity, in full and with no skip list, against the driver over one
# NFS version. Runs inside the UML guest (test/uml/run.sh), where a real
# kernel nfsd exports $NFS_EXPORT_DIR.
#
# Usage: sanity.sh VERS DRIVER_BINARY CSI_SANITY_BINARY    (VERS: 3 or 4.1)
set -euo pipefail
vers=$1 driver=$2 sanity=$3
case $vers in
3) share=$NFS_SHARE_V3 ;;
*) share=$NFS_SHARE_V4 ;;
esac
work=/tmp/sanity-nfs$vers
results=${UML_RESULTS_DIR:?}/sanity-nfs$vers
mkdir -p "$work" "$results"
cat >"$work/params.yaml" <<YAML
server: "$NFS_SERVER"
share: "$share"
mountOptions: "vers=$vers"
YAML

"$driver" --endpoint "unix://$work/csi.sock" --nodeid uml-node --workdir "$work/driver" \
	--share-idle-timeout 30s -v=4 >"$results/driver.log" 2>&1 &
driver_pid=$!
trap 'kill $driver_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$work/csi.sock" ] && break; sleep 0.1; done

set +e
"$sanity" --csi.endpoint "unix://$work/csi.sock" \
	--csi.testvolumeparameters "$work/params.yaml" \
	--csi.mountdir "$work/mount" --csi.stagingdir "$work/stage" --csi.testnodevolumeattachlimit \
	--ginkgo.junit-report "$results/junit.xml" --ginkgo.no-color >"$results/sanity.log" 2>&1
rc=$?
set -e
kill $driver_pid 2>/dev/null || true
wait $driver_pid 2>/dev/null || true

summary=$(grep -E '^Ran [0-9]+ of [0-9]+ Specs' "$results/sanity.log" || true)
counts=$(grep -E '(SUCCESS|FAIL)! -- ' "$results/sanity.log" | tail -1 || true)
echo "csi-sanity NFSv$vers: $summary :: $counts"
if [ $rc -ne 0 ]; then
	grep -E '^\s*\[FAIL\]|^• \[FAILED\]|\[FAILED\]' "$results/sanity.log" | head -40 || true
	echo "csi-sanity NFSv$vers FAILED (exit $rc); full log: $results/sanity.log, driver log: $results/driver.log"
	exit 1
fi

# Everything csi-sanity created it also deleted: the export holds nothing but
# the driver's (now empty) records and snapshots directories.
leftover=$(cd "$NFS_EXPORT_DIR" && find . -mindepth 1 ! -path ./.nfs-csi ! -path ./.nfs-csi/volumes ! -path ./.nfs-csi/snapshots | head -20)
if [ -n "$leftover" ]; then
	echo "csi-sanity NFSv$vers left entries on the export:"; echo "$leftover"
	exit 1
fi
