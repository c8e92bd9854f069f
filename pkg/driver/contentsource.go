package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

// contentSource is a parsed VolumeContentSource: what a new volume is
// filled from.
type contentSource struct {
	// id is the snapshot or volume ID; rel the directory on the share.
	id, rel string
	// snapshot is set for a restore, volume for a clone.
	snapshot *nfs.Snapshot
	volume   *nfs.Volume
}

func (c contentSource) kind() string {
	if c.snapshot != nil {
		return "snapshot"
	}
	return "volume"
}

// parseContentSource checks a content source before anything is read or
// written: an ID that does not parse is NotFound (it cannot be ours), one
// on another share than the new volume's is InvalidArgument.
func parseContentSource(name string, src *csi.VolumeContentSource, vol nfs.Volume) (contentSource, error) {
	var c contentSource
	var server, share string
	switch {
	case src.GetSnapshot() != nil:
		c.id = src.GetSnapshot().GetSnapshotId()
		if c.id == "" {
			return c, status.Errorf(codes.InvalidArgument, "CreateVolume %s: the content source's snapshot ID is empty", name)
		}
		snap, err := nfs.ParseSnapshotID(c.id)
		if err != nil {
			return c, status.Errorf(codes.NotFound, "CreateVolume %s: source snapshot: %v", name, err)
		}
		c.snapshot, c.rel, server, share = &snap, snap.DataDir(), snap.Server, snap.Share
	case src.GetVolume() != nil:
		c.id = src.GetVolume().GetVolumeId()
		if c.id == "" {
			return c, status.Errorf(codes.InvalidArgument, "CreateVolume %s: the content source's volume ID is empty", name)
		}
		sv, err := nfs.ParseVolumeID(c.id)
		if err != nil {
			return c, status.Errorf(codes.NotFound, "CreateVolume %s: source volume: %v", name, err)
		}
		c.volume, c.rel, server, share = &sv, sv.SubDir, sv.Server, sv.Share
	default:
		return c, status.Errorf(codes.InvalidArgument, "CreateVolume %s: the content source is neither a snapshot nor a volume", name)
	}
	if server != vol.Server || share != vol.Share {
		return c, status.Errorf(codes.InvalidArgument,
			"CreateVolume %s: the source %s %s is on %s:%s, and the StorageClass makes the volume on %s; the driver copies only within one share. "+
				"Use a StorageClass of the share %s:%s for this claim",
			name, c.kind(), c.id, server, share, vol.ShareSource(), server, share)
	}
	return c, nil
}

// Errors of a filled CreateVolume.
var (
	errSourceTooLarge = errors.New("the requested capacity is smaller than the source")
	errSourceNotReady = errors.New("the source snapshot is not ready")
	errStillFilling   = errors.New("the volume is still being filled")
)

// createFilledVolume is CreateVolume from a snapshot or a volume: the
// directory is made as for any volume (template, permissions, record), then
// filled by the copy engine, and only then is the volume reported created.
// A fill that outlasts the call goes on in the background; the call answers
// Aborted and its retry waits for the same copy. A fill marker written
// before the record makes a crash at any point restart the copy on retry.
func (d *Driver) createFilledVolume(ctx context.Context, req *csi.CreateVolumeRequest, src *csi.VolumeContentSource, vol nfs.Volume, rec nfs.Record, opts nfs.ProvisionOptions) (*csi.CreateVolumeResponse, error) {
	name, id := req.GetName(), vol.ID()
	c, err := parseContentSource(name, src, vol)
	if err != nil {
		return nil, err
	}
	stored, err := runLockedPair(d, ctx, c.id, id, func(ctx context.Context) (nfs.Record, error) {
		var stored nfs.Record
		// Before the marker is read, as in beginSnapshot: a fill that ends
		// meanwhile has marked itself done before it leaves copyJobs.
		running := d.copies.running(id)
		var job *copyJob
		err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
			size, err := d.sourceSize(sh, c)
			if err != nil {
				return err
			}
			r := req.GetCapacityRange()
			if rec.CapacityBytes < size && (rec.CapacityBytes > 0 || r.GetLimitBytes() > 0) {
				return fmt.Errorf("%w: the %s %s holds %d bytes, and the claim asks for %d (limit %d); ask for at least %d bytes",
					errSourceTooLarge, c.kind(), c.id, size, r.GetRequiredBytes(), r.GetLimitBytes(), size)
			}
			want := rec
			want.Filled = true
			if want.CapacityBytes == 0 {
				want.CapacityBytes = size
			}
			state, err := nfs.BeginFill(sh, vol, c.id)
			if err != nil {
				return err
			}
			if state == nfs.FillNew {
				// Never fill a directory that holds data already.
				exists, err := nfs.DirExists(sh, vol.SubDir)
				if err == nil && exists {
					err = fmt.Errorf("%w: volume %q: directory %s on %s already exists; a volume from a %s is made only in a new directory",
						errConflict, name, vol.SubDir, vol.ShareSource(), c.kind())
				}
				if err != nil {
					return errors.Join(err, nfs.AbandonFill(sh, vol))
				}
			}
			o := opts
			o.Compatible = func(stored nfs.Record) error { return compatibleRecord(stored, want, r, vol) }
			stored, err = nfs.Provision(sh, vol, want, o)
			if err != nil {
				if state == nfs.FillNew {
					err = errors.Join(err, nfs.AbandonFill(sh, vol))
				}
				return err
			}
			// An enforced class limits a restore or a clone too, before its
			// copy starts, so the copy can never overrun the quota unseen.
			if stored.QuotaAgent != "" {
				if err := d.enforce(ctx, "CreateVolume", vol, stored, req.GetSecrets()); err != nil {
					return err
				}
			}
			if state == nfs.FillDone {
				return nil
			}
			if job = running; job != nil {
				return nil
			}
			job = d.copies.start(id, c.id, func(ctx context.Context) error {
				return d.withShare(ctx, vol, func(sh *nfs.Share) error {
					_, err := nfs.FillVolume(ctx, sh, vol, c.id, c.rel, c.volume != nil, opts.Perm, "")
					return err
				})
			})
			return nil
		})
		if err != nil || job == nil {
			return stored, err
		}
		done, err := job.wait(ctx, d.copyWait(ctx))
		if err == nil && !done {
			err = fmt.Errorf("%w: volume %s (%s) from %s %s; the copy goes on in the background and the call is retried", errStillFilling, id, vol.Source(), c.kind(), c.id)
		}
		return stored, err
	})
	if err != nil {
		return nil, d.filledError(err, name, vol)
	}
	if c.snapshot != nil {
		d.snapShares.add(vol) // the share holds a snapshot
	}
	klog.InfoS("Volume created", "name", name, "volumeID", id, "path", vol.Source(), "capacity", stored.CapacityBytes, "source", c.id)
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: stored.CapacityBytes,
		VolumeContext: withRecordCapacity(VolumeContext(vol), stored),
		ContentSource: src,
	}}, nil
}

// sourceSize checks the content source on the share and returns its size:
// a snapshot's bytes, a volume's capacity.
func (d *Driver) sourceSize(sh *nfs.Share, c contentSource) (int64, error) {
	if c.volume != nil {
		rec, err := nfs.SourceVolume(sh, *c.volume, d.cfg.ClusterID)
		return rec.CapacityBytes, err
	}
	dirFd, ok, err := nfs.LookupSnapshotDir(sh)
	var rec nfs.SnapshotRecord
	if ok {
		defer unix.Close(dirFd)
		rec, ok, err = nfs.ReadSnapshotRecord(dirFd, *c.snapshot)
	}
	switch {
	case err != nil:
		return 0, err
	case !ok || rec.ID != c.id:
		return 0, fmt.Errorf("%w: snapshot %s does not exist: no record of this ID at %s", nfs.ErrSourceNotFound, c.id, c.snapshot.Source())
	case rec.ForeignTo(d.cfg.ClusterID):
		return 0, fmt.Errorf("%w: snapshot %s at %s was taken by cluster %q, and this controller %s; another cluster's snapshot is never restored here",
			nfs.ErrSourceNotFound, c.id, c.snapshot.Source(), rec.ClusterID, nfs.DescribeClusterID(d.cfg.ClusterID))
	case !rec.Ready:
		return 0, fmt.Errorf("%w: snapshot %s at %s is still being copied; the restore is retried", errSourceNotReady, c.id, c.snapshot.Source())
	}
	return rec.SizeBytes, nil
}

func (d *Driver) filledError(err error, name string, vol nfs.Volume) error {
	switch {
	case errors.Is(err, errSourceTooLarge):
		return status.Errorf(codes.OutOfRange, "CreateVolume %s (volume %s): %v", name, vol.ID(), err)
	case errors.Is(err, nfs.ErrSourceNotFound):
		return status.Errorf(codes.NotFound, "CreateVolume %s (volume %s): %v", name, vol.ID(), err)
	case errors.Is(err, errSourceNotReady):
		return status.Errorf(codes.Unavailable, "CreateVolume %s (volume %s): %v", name, vol.ID(), err)
	case errors.Is(err, errStillFilling):
		return status.Errorf(codes.Aborted, "CreateVolume %s: %v", name, err)
	case errors.Is(err, nfs.ErrFillConflict):
		return status.Errorf(codes.AlreadyExists, "CreateVolume %s (volume %s): %v", name, vol.ID(), err)
	}
	return d.createError(err, name, vol)
}
