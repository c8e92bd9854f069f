package driver

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

var mountFailureCodes = map[nfs.MountFailure]codes.Code{
	nfs.MountAccessDenied:       codes.PermissionDenied,
	nfs.MountNoSuchExport:       codes.NotFound,
	nfs.MountServerUnreachable:  codes.Unavailable,
	nfs.MountTimedOut:           codes.DeadlineExceeded,
	nfs.MountVersionUnsupported: codes.FailedPrecondition,
	nfs.MountHelperMissing:      codes.FailedPrecondition,
	nfs.MountStatdMissing:       codes.FailedPrecondition,
	nfs.MountFailedOther:        codes.Internal,
}

// nfsStatus turns an error from package nfs into a gRPC status whose message
// names the volume, the path, and what an admin can do about it. Errors that
// already are statuses pass through.
func (d *Driver) nfsStatus(err error, volumeID string, vol nfs.Volume) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	node := d.cfg.NodeID
	if node == "" {
		node = "the controller"
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up (it went away, or cancelled on its own
		// timeout): this says nothing about the server, even for a mount.
		return status.Errorf(codes.Canceled, "volume %s (%s): the call was cancelled by its caller: %v", volumeID, vol.Source(), err)
	}
	var me *nfs.MountError
	if errors.As(err, &me) {
		return status.Errorf(mountFailureCodes[me.Failure()], "volume %s: %s", volumeID, me.Explain(vol.Server, vol.Share, node))
	}
	var foreign *nfs.ForeignClusterError
	if errors.As(err, &foreign) {
		return status.Error(codes.FailedPrecondition, foreign.Error())
	}
	path := vol.Source()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "volume %s (%s): %v", volumeID, path, err)
	case nfs.IsStale(err):
		return status.Errorf(codes.Unavailable, "volume %s (%s): stale NFS file handle: the export was recreated or the server changed its fsid; the mount is replaced on retry: %v", volumeID, path, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return status.Errorf(codes.PermissionDenied,
			"volume %s (%s): permission denied on the NFS server: %v. The controller works as root; if the export squashes root (root_squash, the default), export it with no_root_squash to the controller's nodes, or make the share writable for the squashed user", volumeID, path, err)
	case errors.Is(err, unix.EROFS):
		return status.Errorf(codes.FailedPrecondition, "volume %s (%s): the export is read-only; export it rw: %v", volumeID, path, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return status.Errorf(codes.ResourceExhausted, "volume %s (%s): the NFS server is out of space or quota: %v", volumeID, path, err)
	case errors.Is(err, nfs.ErrSymlink):
		return status.Errorf(codes.FailedPrecondition, "volume %s (%s): a path component %v", volumeID, path, err)
	}
	return status.Errorf(codes.Internal, "volume %s (%s): %v", volumeID, path, err)
}
