package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

func TestNFSStatus(t *testing.T) {
	vol := nfs.Volume{Server: testServer, Share: testShare, SubDir: "pvc-1", OnDelete: nfs.OnDeleteDelete}
	id := vol.ID()
	mountErr := func(output string) error {
		return &nfs.MountError{Source: vol.Source(), Target: "/t", Output: output, Err: errors.New("exit status 32")}
	}
	tests := []struct {
		name string
		err  error
		want codes.Code
		msg  []string
	}{
		{"a status passes through", status.Error(codes.Aborted, "busy"), codes.Aborted, []string{"busy"}},
		{"deadline", fmt.Errorf("mkdir: %w", context.DeadlineExceeded), codes.DeadlineExceeded, []string{id}},
		// A cancelled call used to be reported as DeadlineExceeded.
		{"cancelled", context.Canceled, codes.Canceled, []string{id}},
		{"mount cancelled", &nfs.MountError{Source: vol.Source(), Target: "/t", Err: context.Canceled}, codes.Canceled, []string{id, "cancelled"}},
		{"wrapped cancelled", fmt.Errorf("mkdir: %w", context.Canceled), codes.Canceled, []string{id, vol.Source()}},
		{"stale", fmt.Errorf("open: %w", unix.ESTALE), codes.Unavailable, []string{"stale"}},
		{"wrapped permission denied", fmt.Errorf("mkdir %q: %w", "pvc-1", unix.EACCES), codes.PermissionDenied, []string{"no_root_squash"}},
		{"bare permission denied", unix.EACCES, codes.PermissionDenied, []string{"root_squash"}},
		{"permission denied path error", &os.PathError{Op: "openat", Path: "pvc-1", Err: unix.EACCES}, codes.PermissionDenied, []string{"root_squash"}},
		{"operation not permitted", unix.EPERM, codes.PermissionDenied, []string{"root_squash"}},
		{"read-only export", &os.PathError{Op: "mkdir", Path: "x", Err: unix.EROFS}, codes.FailedPrecondition, []string{"read-only"}},
		{"out of space", fmt.Errorf("mkdir: %w", unix.ENOSPC), codes.ResourceExhausted, []string{"space"}},
		{"out of quota", fmt.Errorf("mkdir: %w", unix.EDQUOT), codes.ResourceExhausted, []string{"quota"}},
		{"symlink in the path", fmt.Errorf("open %q: %w", "ns", nfs.ErrSymlink), codes.FailedPrecondition, []string{"symlink"}},
		{"anything else", errors.New("disk on fire"), codes.Internal, []string{"disk on fire", vol.Source()}},
		{"mount: access denied", mountErr("mount.nfs: access denied by server while mounting"), codes.PermissionDenied, []string{testServer, testShare, testNode, "/etc/exports"}},
		{"mount: no such export", mountErr("mount.nfs: mounting failed, reason given by server: No such file or directory"), codes.NotFound, []string{testShare}},
		{"mount: unreachable", mountErr("mount.nfs: No route to host"), codes.Unavailable, []string{"rpcinfo"}},
		{"mount: timed out", &nfs.MountError{Source: vol.Source(), Target: "/t", Err: context.DeadlineExceeded}, codes.DeadlineExceeded, []string{"killed"}},
		{"mount: version", mountErr("mount.nfs: Protocol not supported"), codes.FailedPrecondition, []string{"vers="}},
		{"mount: helper missing", &nfs.MountError{Source: vol.Source(), Target: "/t", Err: fmt.Errorf("exec: %w", exec.ErrNotFound)}, codes.FailedPrecondition, []string{"nfs-common"}},
		{"mount: statd", mountErr("mount.nfs: rpc.statd is not running but is required for remote locking."), codes.FailedPrecondition, []string{"nolock"}},
		{"mount: other", mountErr("mount.nfs: weird"), codes.Internal, []string{"weird"}},
	}
	e := newEnv(t)
	if got := e.d.nfsStatus(nil, id, vol); got != nil {
		t.Errorf("nfsStatus(nil) = %v", got)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.d.nfsStatus(tc.err, id, vol)
			wantCode(t, err, tc.want)
			wantMessageContains(t, err, tc.msg...)
		})
	}

	// A controller without a node service names itself.
	ctrl, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: e.fake})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	wantMessageContains(t, ctrl.nfsStatus(mountErr("mount.nfs: access denied by server"), id, vol), "the controller")
}

func TestStatProblem(t *testing.T) {
	stale := fmt.Errorf("statfs: %w", unix.ESTALE)
	hung := fmt.Errorf("statfs: %w", context.DeadlineExceeded)
	if got := statReason(stale); got != "StaleFileHandle" {
		t.Errorf("statReason(stale) = %q", got)
	}
	if got := statReason(hung); got != "ServerNotResponding" {
		t.Errorf("statReason(timeout) = %q", got)
	}
	if msg := statProblem(testSource+"/pvc-1", "/target", stale); !containsAll(msg, "stale", testSource+"/pvc-1", "/target") {
		t.Errorf("statProblem(stale) = %q", msg)
	}
	if msg := statProblem(testSource+"/pvc-1", "/target", hung); !containsAll(msg, "not responding", testSource+"/pvc-1", "/target") {
		t.Errorf("statProblem(timeout) = %q", msg)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
