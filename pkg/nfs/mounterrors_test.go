package nfs

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

var errExit32 = errors.New("exit status 32")

func TestMountFailure(t *testing.T) {
	tests := []struct {
		name   string
		output string
		err    error
		want   MountFailure
	}{
		{"access denied", "mount.nfs: access denied by server while mounting 127.0.0.1:/x", errExit32, MountAccessDenied},
		{"v4 operation not permitted", "mount.nfs: Operation not permitted", errExit32, MountAccessDenied},
		{"permission denied", "mount.nfs: mounting h:/x failed, reason given by server: Permission denied", errExit32, MountAccessDenied},
		{"connection refused", "mount.nfs: Connection refused", errExit32, MountServerUnreachable},
		{"connection timed out", "mount.nfs: Connection timed out", errExit32, MountServerUnreachable},
		{"no route", "mount.nfs: No route to host", errExit32, MountServerUnreachable},
		{"network unreachable", "mount.nfs: Network is unreachable", errExit32, MountServerUnreachable},
		{"unresolvable", "mount.nfs: Failed to resolve server nfs.example: Name or service not known", errExit32, MountServerUnreachable},
		{"version", "mount.nfs: requested NFS version or transport protocol is not supported", errExit32, MountVersionUnsupported},
		{"protocol", "mount.nfs: Protocol not supported", errExit32, MountVersionUnsupported},
		{"program not registered", "mount.nfs: mount to NFS server 'h' failed: RPC Error: Program not registered", errExit32, MountVersionUnsupported},
		{"no such export", "mount.nfs: mounting h:/x failed, reason given by server: No such file or directory", errExit32, MountNoSuchExport},
		{"not exported", "mount.nfs: h:/x is not exported", errExit32, MountNoSuchExport},
		{"helper missing", "mount: /x: bad option; for several filesystems (e.g. nfs, cifs) you might need a /sbin/mount.<type> helper program.", errExit32, MountHelperMissing},
		{"wrong fs type", "mount: /x: wrong fs type, bad option, bad superblock on h:/x, missing codepage or helper program, or other error.", errExit32, MountHelperMissing},
		{"mount binary missing", "", fmt.Errorf("exec: %w", exec.ErrNotFound), MountHelperMissing},
		{"statd", "mount.nfs: rpc.statd is not running but is required for remote locking.\nmount.nfs: Either use '-o nolock' to keep locks local, or start statd.\nmount.nfs: an incorrect mount option was specified", errExit32, MountStatdMissing},
		{"deadline", "", context.DeadlineExceeded, MountTimedOut},
		{"deadline with partial output", "mount.nfs: trying text-based options 'vers=4.2,addr=10.0.0.1'", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), MountTimedOut},
		{"canceled", "mount.nfs: Connection timed out", context.Canceled, MountTimedOut},
		{"unknown", "mount.nfs: something unheard of", errExit32, MountFailedOther},
		{"empty", "", errExit32, MountFailedOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &MountError{Source: "h:/x", Target: "/mnt/x", Output: tt.output, Err: tt.err}
			if got := e.Failure(); got != tt.want {
				t.Errorf("Failure() of %q / %v = %d, want %d", tt.output, tt.err, got, tt.want)
			}
			if !errors.Is(e, tt.err) {
				t.Errorf("MountError does not unwrap to %v", tt.err)
			}
		})
	}
}

func TestMountErrorExplain(t *testing.T) {
	const server, export, node = "10.1.2.3", "/srv/nfs/vol-1", "worker-7"
	tests := []struct {
		name   string
		output string
		err    error
		want   []string
	}{
		{"access denied", "mount.nfs: access denied by server while mounting 10.1.2.3:/srv/nfs/vol-1", errExit32,
			[]string{server, export, node, "/etc/exports", "exportfs -ra", "access denied by server"}},
		{"no such export", "mount.nfs: mounting h:/x failed, reason given by server: No such file or directory", errExit32,
			[]string{server, export, "no directory"}},
		{"unreachable", "mount.nfs: Connection refused", errExit32, []string{server, node, "rpcinfo -p " + server, "2049"}},
		{"timed out", "", context.DeadlineExceeded, []string{server, node, "did not finish in time"}},
		{"version", "mount.nfs: Protocol not supported", errExit32, []string{server, "vers=", "/etc/protocols"}},
		{"helper", "mount: /x: bad option; for several filesystems (e.g. nfs, cifs) you might need a /sbin/mount.<type> helper program.", errExit32,
			[]string{"nfs-common", "nfs-utils"}},
		{"statd", "mount.nfs: rpc.statd is not running but is required for remote locking.", errExit32, []string{"rpc.statd", "nolock"}},
		{"other", "mount.nfs: something unheard of", errExit32, []string{"something unheard of", "see the mount output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &MountError{Source: server + ":" + export, Target: "/mnt/x", Output: tt.output, Err: tt.err}
			msg := e.Explain(server, export, node)
			if !strings.HasPrefix(msg, e.Error()+". Hint: ") {
				t.Errorf("Explain does not start with the error: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Explain = %q, does not mention %q", msg, w)
				}
			}
		})
	}
}
