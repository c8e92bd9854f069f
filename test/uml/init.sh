#!/bin/bash
# PID 1 of the UML guest started by test/uml/run.sh. Do not run on a host.
#
# Root is the host's / through hostfs, read-write: everything this script
# writes goes to tmpfs, except the job's state dir in the results dir.
# run.sh passes UML_STATE=<dir> on the kernel command line; the dir holds
# "job", "env", "argv" from the host and receives "exitcode", "init.log".
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

EXPORT_DIR=/run/export # keep in sync with nfsctl.sh
EXPORT_OPTS=rw,insecure,no_root_squash,no_subtree_check,fsid=0
MARGIN=8 # seconds kept for shutdown before the host's outer timeout fires
# UML_NODE=1 only (keep in sync with test/e2e/node): the NFS server's address
# for pods, the pod network, and the root_squash export.
NODE_NFS_ADDR=10.99.0.1
NODE_POD_CIDR=10.88.0.0/16
SQUASH_DIR=/run/export-squash
SQUASH_OPTS=rw,insecure,root_squash,no_subtree_check,fsid=1
QUOTA_DIR=/run/export-quota
QUOTA_OPTS=rw,insecure,no_root_squash,no_subtree_check,fsid=2

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
	# no sysrq fallback: if /proc were not ours, that would reach the host
	sleep 1000 # the host's timeout will kill UML
}
# Every exec costs 0.1-0.5 s under UML on a busy host: use bash builtins
# where possible.

# setup failure: leave no exitcode, so run.sh reports a harness failure
fail() {
	echo "uml-init: $*"
	echo "uml-init: $*" >&4 2>/dev/null
	dmesg >"$STATE/dmesg" 2>/dev/null
	poweroff_now
}
# seconds since $1 (an EPOCHREALTIME value), into $elapsed
since() {
	local d=$((${EPOCHREALTIME/./} - ${1/./}))
	printf -v elapsed '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000))
}
mounted() {
	local dev mnt rest
	while read -r dev mnt rest; do [ "$mnt" = "$1" ] && return 0; done </proc/mounts
	return 1
}
# run a setup step; log how long it took (EPOCHREALTIME is a bash builtin)
step() {
	local t=$EPOCHREALTIME
	"$@" || fail "failed: $*"
	since "$t"
	echo "uml-init: $elapsed s: $*"
}

# 1. pseudo filesystems (before anything else, we need /dev for the consoles).
# Until the guest's procfs is mounted, /proc is the HOST's /proc seen through
# hostfs: never test for or write to /proc or /sys before this line.
mount -t proc proc /proc || { sleep 1000; exit 1; }
is_uml=
while read -r line; do [[ $line == "vendor_id"*"User Mode Linux" ]] && is_uml=1; done </proc/cpuinfo
[ -n "$is_uml" ] || { echo "init.sh: not a UML guest, stopping" >&2; sleep 1000; exit 1; }
mounted /sys || mount -t sysfs sysfs /sys
mounted /dev || mount -t devtmpfs devtmpfs /dev
# guest tty1/tty2 are the host's stdout/stderr (con1/con2 in run.sh)
stty -F /dev/tty1 -opost 2>/dev/null
stty -F /dev/tty2 -opost 2>/dev/null
exec 3>/dev/tty1 4>/dev/tty2
exec >"$STATE/init.log" 2>&1 </dev/null
t0=$EPOCHREALTIME
read -r kver </proc/sys/kernel/osrelease
echo "uml-init: kernel $kver, started at $t0, state $STATE"
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || step mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mounted /dev/shm || step mount -t tmpfs -o mode=1777 shm /dev/shm

# shellcheck source=/dev/null
. "$STATE/job" || fail "cannot read $STATE/job"

# 2. results dir: a mount point of its own, so it stays writable when the
# command's namespace makes / read-only. Before the tmpfs mounts.
step mount --bind "$UML_RESULTS" "$UML_RESULTS"

# private tmpfs for everything that would otherwise land on the host
step mount -t tmpfs -o mode=0755 run /run
step mount -t tmpfs -o mode=1777 tmp /tmp
step mount -t tmpfs -o mode=0755 nfsstate /var/lib/nfs
mkdir -p /run/lock /tmp/home "$EXPORT_DIR" \
	/var/lib/nfs/rpc_pipefs /var/lib/nfs/v4recovery /var/lib/nfs/sm /var/lib/nfs/sm.bak
: >/var/lib/nfs/etab # exportfs fails without it
: >/var/lib/nfs/rmtab
hostname nfs-csi-uml

# 3. kernel modules (run.sh created /lib/modules on the host)
step mount --bind /usr/lib/uml/modules /lib/modules
step modprobe -a nfsd nfsv3 nfsv4 # nfsv4 brings 4.1 and 4.2
# a hostfs bind: keep it read-only, like / for the command
step mount -o remount,bind,ro /lib/modules

# 4. network
step ip link set lo up

# 5. NFS server exporting a tmpfs (hostfs cannot be exported)
if [ "${UML_EXPORT_FS-}" = xfs ]; then
	# An XFS export (reflink=1, the mkfs.xfs default; project quotas on), on
	# a loop device over a sparse file in the guest's tmpfs: the server
	# reflinks NFSv4.2 CLONE and COPY. Its blocks live in guest memory.
	step modprobe -a loop xfs
	step truncate -s 2G /run/export.img
	loopdev=$(losetup -f --show /run/export.img) || fail "losetup /run/export.img"
	step mkfs.xfs -q -f "$loopdev"
	step mount -o prjquota "$loopdev" "$EXPORT_DIR"
	step chmod 0777 "$EXPORT_DIR"
else
	step mount -t tmpfs -o mode=0777,size=512m export "$EXPORT_DIR"
fi
step mount -t nfsd nfsd /proc/fs/nfsd
step mount -t rpc_pipefs rpc_pipefs /var/lib/nfs/rpc_pipefs
echo 10 >/proc/fs/nfsd/nfsv4leasetime
echo 10 >/proc/fs/nfsd/nfsv4gracetime
step rpcbind -w
step exportfs -o "$EXPORT_OPTS" "127.0.0.1:$EXPORT_DIR"
step rpc.mountd
step rpc.statd --no-notify
step rpc.nfsd 8
echo Y >/proc/fs/nfsd/v4_end_grace || echo "uml-init: could not end grace period"

# 5b. opt-in (UML_NODE=1 in run.sh's environment): what a real kubelet and
# containerd need, for the e2e bed's real node (test/e2e/node). Off by
# default, so the other runs are unchanged. (The hostname they also need,
# instead of "(none)", is set above for every run.)
if [ "${UML_NODE-}" = 1 ]; then
	step mount --make-rshared /
	step mount -t cgroup2 cgroup2 /sys/fs/cgroup
	# iptables (legacy) NAT: the bed's stand-in for kube-proxy's one rule.
	step modprobe -a overlay veth bridge br_netfilter ip_tables iptable_nat xt_nat
	# State of containerd, the kubelet and CNI (host-local's IP leases,
	# libcni's cache: /var/lib/cni), pod logs, and containerd's
	# config dir, on guest tmpfs: hostfs cannot hold overlay upper dirs and
	# these must not reach the host. run.sh made the mount points.
	for d in /var/lib/containerd /etc/containerd /var/lib/kubelet /var/lib/cni /var/log; do
		step mount -t tmpfs -o mode=0755 node-state "$d"
	done
	# An address the pods can reach the NFS server at (their 127.0.0.1 is
	# their own): pods route to it through the CNI bridge, and the host's
	# own mounts use it as their source address.
	step ip link add nfs0 type dummy
	step ip addr add "$NODE_NFS_ADDR/32" dev nfs0
	step ip link set nfs0 up
	step exportfs -o "$EXPORT_OPTS" "$NODE_NFS_ADDR:$EXPORT_DIR"
	step exportfs -o "$EXPORT_OPTS" "$NODE_POD_CIDR:$EXPORT_DIR"
	# A second export with root_squash (root on the clients becomes nobody),
	# for the fsGroup scenario; its root is world-writable, as an admin
	# would make it for such an export.
	mkdir -p "$SQUASH_DIR"
	step mount -t tmpfs -o mode=0777,size=128m export-squash "$SQUASH_DIR"
	for c in 127.0.0.1 "$NODE_NFS_ADDR" "$NODE_POD_CIDR"; do
		step exportfs -o "$SQUASH_OPTS" "$c:$SQUASH_DIR"
	done
	# A third export: XFS with project quotas, where the chart's quota agent
	# pod sets the limits (TestQuotaAgentPod). A loop device over a sparse
	# file in guest memory, as UML_EXPORT_FS=xfs above; mkfs.xfs wants at
	# least 300 MB.
	step modprobe -a loop xfs
	step truncate -s 320M /run/export-quota.img
	qdev=$(losetup -f --show /run/export-quota.img) || fail "losetup /run/export-quota.img"
	step mkfs.xfs -q -f "$qdev"
	mkdir -p "$QUOTA_DIR"
	step mount -o prjquota "$qdev" "$QUOTA_DIR"
	for c in 127.0.0.1 "$NODE_NFS_ADDR" "$NODE_POD_CIDR"; do
		step exportfs -o "$QUOTA_OPTS" "$c:$QUOTA_DIR"
	done
fi

# wait until nfsd and mountd really answer: without a version, rpcinfo
# calls every registered version (nfs 3 and 4, mountd 1 to 3) over TCP
ready=
t=$EPOCHREALTIME
for ((i = 0; i < 300; i++)); do
	if rpcinfo -t 127.0.0.1 nfs >/dev/null 2>&1 &&
		rpcinfo -t 127.0.0.1 mountd >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.1
done
since "$t"
echo "uml-init: $elapsed s: waiting for rpcinfo"
[ -n "$ready" ] || fail "NFS server did not answer: $(rpcinfo -p 127.0.0.1 2>&1)"
echo "$EPOCHREALTIME" >"$STATE/ready-at"
since "$t0"
echo "uml-init: NFS server ready $elapsed s after init started"

# 6. the command: private mount namespace with / read-only, inner timeout
left=$((UML_DEADLINE - ${EPOCHREALTIME%.*} - MARGIN))
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
	NFS_SHARE_V3="$EXPORT_DIR" NFS_SHARE_V4=/ NFS_EXPORT_FS="${UML_EXPORT_FS:-tmpfs}" \
	UML_NODE="${UML_NODE-}" \
	UML_RESULTS_DIR="$UML_RESULTS" UML_ENV_FILE="$STATE/env" \
	timeout --kill-after=3 "$left" \
	unshare -m --propagation private -- \
	/bin/bash --noprofile --norc -c '
		mount -o remount,bind,ro / || { echo "uml: cannot make / read-only" >&2; exit 125; }
		. "$UML_ENV_FILE" || exit 125
		unset UML_ENV_FILE
		exec "$@"' uml-run "${argv[@]}" \
	</dev/null >&3 2>&4 3>&- 4>&-
rc=$?
echo "uml-init: command exited $rc at $EPOCHREALTIME"
echo "$rc" >"$STATE/exitcode"
[ "${UML_KEEP_LOGS-}" != 1 ] || dmesg >"$STATE/dmesg" 2>/dev/null
poweroff_now
