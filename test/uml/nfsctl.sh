#!/bin/sh
# Fault injection for tests running INSIDE the UML guest of test/uml/run.sh.
# usage: nfsctl.sh stop|start|unexport|export|status
#   stop      stop the nfsd threads (clients hang or time out)
#   start     start 8 nfsd threads again (and skip the v4 grace period)
#   unexport  withdraw the export (new mounts are refused)
#   export    restore the export with the options run.sh uses
#   status    print threads and exports; exit 1 if not serving
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPORT_DIR=${NFS_EXPORT_DIR:-/run/export}
EXPORT_OPTS=rw,insecure,no_root_squash,no_subtree_check,fsid=0
CLIENT=127.0.0.1

if ! grep -q '^vendor_id.*User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "nfsctl.sh: only for use inside the UML guest of test/uml/run.sh" >&2
	exit 2
fi

case "${1-}" in
stop) rpc.nfsd 0 ;;
start)
	rpc.nfsd 8
	# a restarted nfsd starts a new grace period, which blocks v4 opens
	echo Y >/proc/fs/nfsd/v4_end_grace 2>/dev/null || true
	;;
unexport) exportfs -u "$CLIENT:$EXPORT_DIR" ;;
export) exportfs -o "$EXPORT_OPTS" "$CLIENT:$EXPORT_DIR" ;;
status)
	threads=$(cat /proc/fs/nfsd/threads)
	echo "nfsd threads: $threads"
	exportfs -v
	[ "$threads" -gt 0 ] && exportfs | grep -q "^$EXPORT_DIR\([[:space:]]\|$\)"
	;;
*)
	echo "usage: $0 stop|start|unexport|export|status" >&2
	exit 2
	;;
esac
