#!/usr/bin/env bash
# Boot user-mode Linux (UML) with a real kernel NFS server and run a command
# inside it. See test/uml/README.md.
#
# Usage: test/uml/run.sh [--timeout SECONDS] [--mem SIZE] -- COMMAND [ARGS...]
#
# Exit status: the command's exit status; 124 when the run timed out;
# 125 when the harness itself failed (no exit status came back from the guest).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd -P)
UML_BIN=/usr/bin/linux.uml

TIMEOUT=900
MEM=1G

log() { echo "uml: $*" >&2; }
die() { log "$*"; exit 125; }
usage() {
	cat >&2 <<EOF
usage: $0 [--timeout SECONDS] [--mem SIZE] -- COMMAND [ARGS...]

Boots UML with a kernel NFS server exporting a tmpfs and runs COMMAND inside it,
in a mount namespace where / is read-only.
  --timeout SECONDS  overall limit, boot included (default $TIMEOUT)
  --mem SIZE         guest memory, e.g. 512M, 1G (default $MEM)
Environment: UML_RESULTS_DIR (default \$REPO/_output/uml), UML_PASS_ENV,
UML_KEEP_LOGS=1, UML_NODE=1 (also set up for containerd and a kubelet),
UML_EXPORT_FS=xfs (export XFS with reflink and project quotas instead of
tmpfs; the command sees NFS_EXPORT_FS=xfs or tmpfs).
EOF
	exit 125
}

while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
	--timeout=*) TIMEOUT=${1#*=}; shift ;;
	--mem) [ $# -ge 2 ] || usage; MEM=$2; shift 2 ;;
	--mem=*) MEM=${1#*=}; shift ;;
	--) shift; break ;;
	-h|--help) usage ;;
	-*) log "unknown option: $1"; usage ;;
	*) break ;; # the command, without a "--" before it
	esac
done
[ $# -gt 0 ] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 10 ] || die "--timeout must be an integer >= 10, got '$TIMEOUT'"
[[ $MEM =~ ^[0-9]+[KMG]?$ ]] || die "--mem must look like 512M or 1G, got '$MEM'"
[ "$(id -u)" = 0 ] || die "must run as root (UML needs to mount and run nfsd)"

# --- packages -------------------------------------------------------------
# command -> Debian package that provides it
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
need="linux.uml:user-mode-linux rpc.nfsd:nfs-kernel-server exportfs:nfs-kernel-server
rpc.mountd:nfs-kernel-server mount.nfs:nfs-common rpc.statd:nfs-common rpcbind:rpcbind
rpcinfo:rpcbind modprobe:kmod ip:iproute2 unshare:util-linux timeout:coreutils
mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs losetup:mount setpriv:util-linux"
missing=()
for n in $need; do
	if ! command -v "${n%%:*}" >/dev/null 2>&1; then
		[[ " ${missing[*]-} " == *" ${n#*:} "* ]] || missing+=("${n#*:}")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2 || die "apt-get update failed"
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi
[ -x "$UML_BIN" ] || die "$UML_BIN not found"
KVER=$("$UML_BIN" --version 2>/dev/null | tail -n1)
[ -d "/usr/lib/uml/modules/$KVER" ] || die "no UML modules for kernel '$KVER' in /usr/lib/uml/modules"
# The guest bind-mounts the UML modules here; the mount point must exist.
mkdir -p /lib/modules
# UML_NODE=1: the guest mounts tmpfs on these (init.sh); the mount points must
# exist. They stay empty on the host.
if [ "${UML_NODE-}" = 1 ]; then
	mkdir -p /var/lib/containerd /etc/containerd /var/lib/kubelet /var/lib/cni /var/log
fi

# --- directories ------------------------------------------------------------
check_results_dir() {
	case "$1" in
	/) die "UML_RESULTS_DIR must not be /" ;;
	/tmp|/tmp/*|/run|/run/*|/var/lib/nfs|/var/lib/nfs/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*)
		die "UML_RESULTS_DIR=$1 is hidden by a guest mount (tmpfs on /tmp, /run, /var/lib/nfs); use a directory elsewhere" ;;
	esac
}
RESULTS=${UML_RESULTS_DIR:-$REPO/_output/uml}
[[ $RESULTS == /* ]] || RESULTS="$PWD/$RESULTS"
check_results_dir "$RESULTS"
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd -P)
check_results_dir "$RESULTS"
[[ $RESULTS =~ ^[A-Za-z0-9_./+@%,:=-]+$ ]] || die "UML_RESULTS_DIR=$RESULTS: only plain characters (no spaces) are supported"

CALLER_CWD=$(pwd -P)
case "$CALLER_CWD" in
/tmp|/tmp/*|/run|/run/*) log "warning: cwd $CALLER_CWD is hidden by a tmpfs in the guest" ;;
esac

ID="nfscsi-$(date +%s)-$$-$RANDOM"
STATE="$RESULTS/.uml-runs/$ID"   # host dir the guest reads its job from and writes its exit code to
UMLDIR=$(mktemp -d "${TMPDIR:-/tmp}/uml-$ID.XXXXXX")  # uml_dir; only used on the host side
mkdir -p "$STATE"

# --- the job for the guest --------------------------------------------------
DEADLINE=$(( $(date +%s) + TIMEOUT ))
printf '%s\0' "$@" >"$STATE/argv"
{
	printf 'UML_CWD=%q\n' "$CALLER_CWD"
	printf 'UML_DEADLINE=%q\n' "$DEADLINE"
	printf 'UML_RESULTS=%q\n' "$RESULTS"
	printf 'UML_KEEP_LOGS=%q\n' "${UML_KEEP_LOGS-}"
	printf 'UML_NODE=%q\n' "${UML_NODE-}"
	printf 'UML_EXPORT_FS=%q\n' "${UML_EXPORT_FS-}"
} >"$STATE/job"
{
	for name in ${UML_PASS_ENV-}; do
		[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "UML_PASS_ENV: bad variable name '$name'"
		if [ -n "${!name+set}" ]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
	done
} >"$STATE/env"

# --- run --------------------------------------------------------------------
uml_pid=
out_pid=
err_pid=
cleanup_done=
kill_leftovers() {
	# UML forks one host process per guest address space; all carry our umid.
	local pids
	pids=$(pgrep -f -- "umid=$ID " || true)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -9 $pids 2>/dev/null || true
	fi
}
cleanup() {
	[ -z "$cleanup_done" ] || return 0
	cleanup_done=1
	if [ -n "$uml_pid" ]; then kill -TERM "$uml_pid" 2>/dev/null || true; fi
	kill_leftovers
	if [ -n "$out_pid" ]; then wait "$out_pid" 2>/dev/null || true; fi
	if [ -n "$err_pid" ]; then wait "$err_pid" 2>/dev/null || true; fi
	rm -rf "$UMLDIR"
	if [ "${UML_KEEP_LOGS-}" != 1 ] && [ -z "${keep_state-}" ]; then
		rm -rf "$STATE"
		rmdir "$RESULTS/.uml-runs" 2>/dev/null || true
	fi
}
on_signal() {
	log "interrupted by SIG$1; stopping UML"
	cleanup
	exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# UML makes its console fds non-blocking; give it pipes, never our own
# stdout/stderr (a shared terminal would stay O_NONBLOCK after we exit).
mkfifo "$UMLDIR/out" "$UMLDIR/err"
cat <"$UMLDIR/out" &
out_pid=$!
cat <"$UMLDIR/err" >&2 &
err_pid=$!

# con0 (the kernel console, init's own output before redirect) and UML's own
# chatter go to a log file; guest /dev/tty1 and /dev/tty2 are the command's
# stdout and stderr.
start=$(date +%s.%N)
timeout --kill-after=10 "$TIMEOUT" "$UML_BIN" \
	umid="$ID" uml_dir="$UMLDIR" mem="$MEM" \
	root=/dev/root rootfstype=hostfs rootflags=/ rw \
	init="$SCRIPT_DIR/init.sh" \
	con=null ssl=null con0=null,fd:1 con1=null,fd:3 con2=null,fd:4 \
	UML_STATE="$STATE" \
	</dev/null >"$STATE/console.log" 2>&1 3>"$UMLDIR/out" 4>"$UMLDIR/err" &
uml_pid=$!
uml_rc=0
wait "$uml_pid" || uml_rc=$?
uml_pid=
kill_leftovers
wait "$out_pid" 2>/dev/null || true
wait "$err_pid" 2>/dev/null || true
out_pid= err_pid=
end=$(date +%s.%N)

if [ -s "$STATE/ready-at" ]; then
	log "$(awk -v a="$start" -v r="$(cat "$STATE/ready-at")" -v b="$end" \
		'BEGIN{printf "NFS server ready %.1f s after start, total %.1f s", r-a, b-a}')"
fi

if [ -s "$STATE/exitcode" ]; then
	rc=$(cat "$STATE/exitcode")
	[[ $rc =~ ^[0-9]+$ ]] || { keep_state=1; die "bad exit code '$rc' from guest"; }
	[ "$rc" != 124 ] || log "command timed out (overall limit ${TIMEOUT}s)"
	exit "$rc"
fi

keep_state=1
if [ "$uml_rc" = 124 ] || [ "$uml_rc" = 137 ]; then
	log "UML guest did not report an exit code: timed out after ${TIMEOUT}s and was killed"
	rc=124
else
	log "UML guest did not report an exit code (crash or setup failure; linux.uml exit $uml_rc)"
	rc=125
fi
for f in init.log console.log; do
	if [ -s "$STATE/$f" ]; then
		log "--- last lines of $STATE/$f"
		tail -n 25 "$STATE/$f" >&2
	fi
done
exit "$rc"
