#!/usr/bin/env bash
# Inside the UML guest: csi-sanity over NFSv3 and NFSv4.1, then the
# integration tests. Prints one "RESULT <name> pass|fail" line per suite.
# Usage: guest.sh REPO_ROOT CSI_SANITY_BINARY
set -uo pipefail
root=$1 sanity=$2
rc=0
for vers in 3 4.1; do
	if "$root/test/integration/sanity.sh" "$vers" "$root/bin/nfs-csi" "$sanity"; then
		echo "RESULT csi-sanity-nfs$vers pass"
	else
		echo "RESULT csi-sanity-nfs$vers fail"; rc=1
	fi
done
log=$UML_RESULTS_DIR/integration.log
if NFSCTL=$root/test/uml/nfsctl.sh "$root/_output/integration.test" -test.v -test.timeout 15m >"$log" 2>&1; then
	echo "RESULT integration pass"
else
	echo "RESULT integration fail"; rc=1
fi
grep -E '^(--- |    --- )' "$log" | sed 's/^/  /'
grep -E '^\s+\w+_test\.go:[0-9]+:' "$log" | head -40
exit $rc
