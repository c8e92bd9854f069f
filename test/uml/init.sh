#!/bin/bash
# PID 1 of the UML guest started by test/uml/run.sh. Do not run on a host.
#
# Root is the host's / through hostfs, read-write: everything this script
# writes goes to tmpfs, except the job's state dir in the results dir.
# run.sh passes UML_STATE=<dir> on the kernel command line; the dir holds
# "job", "env", "argv" from the host and receives "exitcode", "init.log".
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

HERE=$(dirname "$0")
EXPORT_DIR=/run/export # also the default in nfsctl.sh
MARGIN=8 # seconds kept for shutdown before the host's outer timeout fires

if [ "$$" != 1 ] || [ -z "${UML_STATE-}" ]; then
	echo "init.sh: only for use as init of the UML guest (see test/uml/run.sh)" >&2
	exit 2
fi
STATE=$UML_STATE

poweroff_now() {
	sync
	kill -9 -1 2>/dev/null
	# last close of the console ttys waits until UML has written out their
	# buffers, so the tail of the command's output is not lost
	exec 3>&- 4>&-
	sync
	poweroff -f -f >/dev/null 2>&1
	echo o >/proc/sysrq-trigger 2>/dev/null
	sleep 1000 # the host's timeout will kill UML
}
# setup failure: leave no exitcode, so run.sh reports a harness failure
fail() {
	echo "uml-init: $*"
	echo "uml-init: $*" >&4 2>/dev/null
	dmesg >"$STATE/dmesg" 2>/dev/null
	poweroff_now
}
step() { "$@" || fail "failed: $*"; }

# 1. pseudo filesystems (before anything else, we need /dev for the consoles)
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
# guest tty1/tty2 are the host's stdout/stderr (con1/con2 in run.sh)
stty -F /dev/tty1 -opost 2>/dev/null
stty -F /dev/tty2 -opost 2>/dev/null
exec 3>/dev/tty1 4>/dev/tty2
exec >"$STATE/init.log" 2>&1 </dev/null
t0=$(date +%s.%N)
echo "uml-init: kernel $(uname -r), state $STATE"
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || step mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mountpoint -q /dev/shm || step mount -t tmpfs -o mode=1777 shm /dev/shm

# shellcheck source=/dev/null
. "$STATE/job" || fail "cannot read $STATE/job"

# 2. results dir: a mount point of its own, so it stays writable when the
# command's namespace makes / read-only. Before the tmpfs mounts.
step mount --bind "$UML_RESULTS" "$UML_RESULTS"

# private tmpfs for everything that would otherwise land on the host
step mount -t tmpfs -o mode=0755 run /run
step mount -t tmpfs -o mode=1777 tmp /tmp
step mount -t tmpfs -o mode=0755 nfsstate /var/lib/nfs
mkdir -p /run/lock /var/lib/nfs/rpc_pipefs /var/lib/nfs/v4recovery /var/lib/nfs/sm /var/lib/nfs/sm.bak
chmod 1777 /run/lock
: >/var/lib/nfs/etab
: >/var/lib/nfs/rmtab
hostname nfs-csi-uml

# 3. kernel modules (run.sh created /lib/modules on the host)
step mount --bind /usr/lib/uml/modules /lib/modules
step modprobe nfsd
step modprobe nfsv3
step modprobe nfsv4

# 4. network
step ip link set lo up

# 5. NFS server exporting a tmpfs (hostfs cannot be exported)
mkdir -p "$EXPORT_DIR"
step mount -t tmpfs -o mode=0777,size=512m export "$EXPORT_DIR"
step mount -t nfsd nfsd /proc/fs/nfsd
step mount -t rpc_pipefs rpc_pipefs /var/lib/nfs/rpc_pipefs
echo 10 >/proc/fs/nfsd/nfsv4leasetime
echo 10 >/proc/fs/nfsd/nfsv4gracetime
step rpcbind -w
step "$HERE/nfsctl.sh" export # exportfs -o <options> 127.0.0.1:/run/export
step rpc.mountd
step rpc.statd --no-notify
step rpc.nfsd 8
echo Y >/proc/fs/nfsd/v4_end_grace || echo "uml-init: could not end grace period"

# wait until nfsd and mountd really answer
ready=
for _ in $(seq 1 300); do
	if rpcinfo -t 127.0.0.1 nfs 3 >/dev/null 2>&1 &&
		rpcinfo -t 127.0.0.1 nfs 4 >/dev/null 2>&1 &&
		rpcinfo -t 127.0.0.1 mountd 3 >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.1
done
[ -n "$ready" ] || fail "NFS server did not answer: $(rpcinfo -p 127.0.0.1 2>&1)"
date +%s.%N >"$STATE/ready-at"
echo "uml-init: NFS server ready after $(awk -v a="$t0" -v b="$(cat "$STATE/ready-at")" 'BEGIN{printf "%.1f", b-a}') s in init"

# 6. the command: private mount namespace with / read-only, inner timeout
left=$((UML_DEADLINE - $(date +%s) - MARGIN))
if [ "$left" -lt 1 ]; then
	echo "uml-init: no time left for the command"
	echo 124 >"$STATE/exitcode"
	poweroff_now
fi
mapfile -d '' argv <"$STATE/argv"
cd "$UML_CWD" || fail "cannot cd to $UML_CWD"
# shellcheck disable=SC2016
env -i \
	PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/tmp/home TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp \
	NFS_SERVER=127.0.0.1 NFS_EXPORT_DIR="$EXPORT_DIR" \
	NFS_SHARE_V3="$EXPORT_DIR" NFS_SHARE_V4=/ \
	UML_RESULTS_DIR="$UML_RESULTS" UML_ENV_FILE="$STATE/env" \
	timeout --kill-after=3 "$left" \
	unshare -m --propagation private -- \
	/bin/bash --noprofile --norc -c '
		mount -o remount,bind,ro / || { echo "uml: cannot make / read-only" >&2; exit 125; }
		mkdir -p "$HOME"
		. "$UML_ENV_FILE" || exit 125
		unset UML_ENV_FILE
		exec "$@"' uml-run "${argv[@]}" \
	</dev/null >&3 2>&4 3>&- 4>&-
rc=$?
echo "uml-init: command exited $rc"
echo "$rc" >"$STATE/exitcode"
dmesg >"$STATE/dmesg" 2>/dev/null
poweroff_now
