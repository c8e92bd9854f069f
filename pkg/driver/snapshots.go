package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

// ParamCopyMethod is the VolumeSnapshotClass parameter that names the
// fastest copy method to try (clone, copy_file_range or read-write); the
// default tries clone first and falls back on its own.
const ParamCopyMethod = "copyMethod"

// parseSnapshotParams validates VolumeSnapshotClass parameters: unknown
// ones are refused by name, like StorageClass parameters.
func parseSnapshotParams(params map[string]string) (nfs.CopyMethod, error) {
	var method nfs.CopyMethod
	for key, value := range params {
		if strings.HasPrefix(key, csiParamPrefix) {
			continue // csi-snapshotter's own (--extra-create-metadata)
		}
		if !strings.EqualFold(key, ParamCopyMethod) {
			return "", fmt.Errorf("unknown VolumeSnapshotClass parameter %q; the only one is %s (clone, copy_file_range or read-write)", key, ParamCopyMethod)
		}
		m, err := nfs.ParseCopyMethod(strings.TrimSpace(value))
		if err != nil {
			return "", fmt.Errorf("parameter %s: %w", ParamCopyMethod, err)
		}
		method = m
	}
	return method, nil
}

// errSnapshotConflict marks a CreateSnapshot whose name is taken.
var errSnapshotConflict = errors.New("snapshot name taken")

// CreateSnapshot copies the source volume's directory into the driver's own
// area of its share. A copy that outlasts the call goes on in the
// background, and the answer says ready_to_use: false until a later call
// finds it complete.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	name, srcID := req.GetName(), req.GetSourceVolumeId()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateSnapshot: name is required")
	}
	if srcID == "" {
		return nil, status.Errorf(codes.InvalidArgument, "CreateSnapshot %s: source volume ID is required", name)
	}
	if err := nfs.ValidateSnapshotName(name); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateSnapshot %s: %v", name, err)
	}
	method, err := parseSnapshotParams(req.GetParameters())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateSnapshot %s: %v", name, err)
	}
	vol, err := nfs.ParseVolumeID(srcID)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "CreateSnapshot %s: source volume: %v", name, err)
	}
	snap := nfs.SnapshotOf(vol, name)
	id := snap.ID()
	rec, err := runLockedPair(d, ctx, srcID, id, func(ctx context.Context) (nfs.SnapshotRecord, error) {
		rec, job, err := d.beginSnapshot(ctx, snap, vol, method)
		if err != nil || job == nil {
			return rec, err
		}
		done, err := job.wait(ctx, d.copyWait(ctx))
		if !done || err != nil {
			return rec, err
		}
		return d.readSnapshot(ctx, snap)
	})
	if err != nil {
		return nil, d.snapshotError("CreateSnapshot", err, id, vol)
	}
	// Only a share that holds a snapshot is listed: one added for any
	// parseable ID would let a bogus server fail every ListSnapshots.
	d.snapShares.add(vol)
	klog.InfoS("Snapshot created", "name", name, "snapshotID", id, "sourceVolumeID", srcID, "path", snap.Source(), "ready", rec.Ready, "bytes", rec.SizeBytes, "method", rec.Method)
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(rec)}, nil
}

// beginSnapshot claims the snapshot's record, or reads the one an earlier
// call made, and makes sure a copy runs unless the snapshot is ready: the
// running one, or a new one after a crash or a failure.
func (d *Driver) beginSnapshot(ctx context.Context, snap nfs.Snapshot, vol nfs.Volume, method nfs.CopyMethod) (nfs.SnapshotRecord, *copyJob, error) {
	id, srcID := snap.ID(), vol.ID()
	var rec nfs.SnapshotRecord
	// Looked up before the record is read: a copy that ends meanwhile has
	// marked the record ready before it leaves copyJobs, so a record read
	// afterwards that is not ready has no copy running (and none starts
	// but under this call's lock).
	job := d.copies.running(id)
	err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
		dirFd, haveDir, err := nfs.LookupSnapshotDir(sh)
		if err != nil {
			return err
		}
		defer func() {
			if dirFd >= 0 {
				unix.Close(dirFd)
			}
		}()
		var stored nfs.SnapshotRecord
		var ok bool
		if haveDir {
			if stored, ok, err = nfs.ReadSnapshotRecord(dirFd, snap); err != nil {
				return err
			}
		}
		switch {
		case ok && (stored.ID != id || stored.SourceVolumeID != srcID):
			return fmt.Errorf("%w: snapshot %q exists as %s of volume %s, not of %s", errSnapshotConflict, snap.Name, stored.ID, stored.SourceVolumeID, srcID)
		case ok && stored.ForeignTo(d.cfg.ClusterID):
			return fmt.Errorf("%w: snapshot %q (%s) was taken by cluster %q, and this controller %s; use another name",
				errSnapshotConflict, snap.Name, snap.Source(), stored.ClusterID, nfs.DescribeClusterID(d.cfg.ClusterID))
		case ok && stored.Ready:
			rec, job = stored, nil
			return nil
		case ok:
			rec = stored
			if job != nil {
				return nil
			}
			// The copy of an earlier process or call ended without
			// completing (a crash, a failure): start it again.
			if _, err := nfs.SourceVolume(sh, vol, d.cfg.ClusterID); err != nil {
				return err
			}
			klog.InfoS("Restarting a snapshot copy that did not complete", "snapshotID", id, "sourceVolumeID", srcID, "path", snap.Source())
		default:
			src, err := nfs.SourceVolume(sh, vol, d.cfg.ClusterID)
			if err != nil {
				return err
			}
			rec = nfs.SnapshotRecord{Name: snap.Name, ID: id, SourceVolumeID: srcID, SourceCapacityBytes: src.CapacityBytes,
				ClusterID: d.cfg.ClusterID, Created: time.Now().UnixNano()}
			if !haveDir {
				if dirFd, err = nfs.OpenSnapshotDir(sh); err != nil {
					return err
				}
			}
			if err := nfs.CreateSnapshotRecord(dirFd, snap, rec); err != nil {
				if errors.Is(err, nfs.ErrRecordExists) {
					return status.Errorf(codes.Aborted, "CreateSnapshot %s: another controller is creating snapshot %q at %s at the same time; retry", id, snap.Name, snap.Source())
				}
				return err
			}
		}
		start := rec
		job = d.copies.start(id, srcID, func(ctx context.Context) error {
			return d.withShare(ctx, vol, func(sh *nfs.Share) error {
				_, err := nfs.TakeSnapshot(ctx, sh, snap, vol, start, method)
				return err
			})
		})
		return nil
	})
	return rec, job, err
}

func (d *Driver) readSnapshot(ctx context.Context, snap nfs.Snapshot) (nfs.SnapshotRecord, error) {
	var rec nfs.SnapshotRecord
	err := d.withShare(ctx, snap.ShareVolume(), func(sh *nfs.Share) error {
		dirFd, ok, err := nfs.LookupSnapshotDir(sh)
		if err != nil {
			return err
		}
		if ok {
			defer unix.Close(dirFd)
			rec, ok, err = nfs.ReadSnapshotRecord(dirFd, snap)
		}
		if err == nil && (!ok || rec.ID != snap.ID()) {
			err = fmt.Errorf("%w: snapshot %s has no record at %s", nfs.ErrSourceNotFound, snap.ID(), snap.Source())
		}
		return err
	})
	return rec, err
}

func csiSnapshot(rec nfs.SnapshotRecord) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     rec.ID,
		SourceVolumeId: rec.SourceVolumeID,
		SizeBytes:      rec.SizeBytes,
		CreationTime:   timestamppb.New(rec.CreationTime()),
		ReadyToUse:     rec.Ready,
	}
}

// snapshotError maps the errors of the snapshot RPCs to their codes.
func (d *Driver) snapshotError(rpc string, err error, id string, vol nfs.Volume) error {
	var foreign *nfs.ForeignSnapshotError
	var busy *nfs.BusyError
	switch {
	case errors.Is(err, errSnapshotConflict):
		return status.Errorf(codes.AlreadyExists, "%s %s: %v", rpc, id, err)
	case errors.Is(err, nfs.ErrSourceNotFound):
		return status.Errorf(codes.NotFound, "%s %s: %v", rpc, id, err)
	case errors.As(err, &foreign):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", rpc, err)
	case errors.As(err, &busy):
		return status.Errorf(codes.FailedPrecondition, "%s %s: files of the snapshot are open on an NFS client: %v; the call is retried", rpc, id, err)
	}
	return d.nfsStatus(err, id, vol)
}

// DeleteSnapshot removes exactly what CreateSnapshot made for this ID and
// cluster: the copy, then its record. An ID that is not ours, or a snapshot
// already gone, is success.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "DeleteSnapshot: snapshot ID is required")
	}
	snap, err := nfs.ParseSnapshotID(id)
	if err != nil {
		klog.InfoS("DeleteSnapshot of an ID that is not ours; nothing to do", "snapshotID", id, "reason", err)
		return &csi.DeleteSnapshotResponse{}, nil
	}
	shareVol := snap.ShareVolume()
	done, err := runLocked(d, ctx, id, func(ctx context.Context) (nfs.Disposal, error) {
		if j := d.copies.readingFrom(id); j != nil {
			return "", status.Errorf(codes.FailedPrecondition, "DeleteSnapshot %s: volume %s is being restored from it; the deletion is retried once that copy ends", id, j.target)
		}
		if err := d.stopCopy(ctx, "DeleteSnapshot", id); err != nil {
			return "", err
		}
		var done nfs.Disposal
		err := d.withShare(ctx, shareVol, func(sh *nfs.Share) error {
			var err error
			done, err = nfs.DisposeSnapshot(sh, snap, d.cfg.ClusterID)
			return err
		})
		return done, err
	})
	if err != nil {
		err = d.snapshotError("DeleteSnapshot", err, id, shareVol)
		if s := status.Convert(err); s.Code() == codes.NotFound {
			// DeleteSnapshot has no NOT_FOUND: a share the controller cannot
			// mount now may hold the snapshot once it is back.
			return nil, status.Errorf(codes.Unavailable, "DeleteSnapshot %s: the controller cannot mount the share %s:%s, so nothing was deleted; the deletion is retried: %s",
				id, snap.Server, snap.Share, s.Message())
		}
		return nil, err
	}
	klog.InfoS("Snapshot deleted", "snapshotID", id, "path", snap.Source(), "result", done)
	return &csi.DeleteSnapshotResponse{}, nil
}

// stopCopy cancels the copy into target, if one runs, and waits for it to
// stop; if it does not stop in time the call is Aborted, to be retried.
func (d *Driver) stopCopy(ctx context.Context, rpc, target string) error {
	j := d.copies.running(target)
	if j == nil {
		return nil
	}
	j.cancel()
	if done, _ := j.wait(ctx, d.copyWait(ctx)); !done {
		return status.Errorf(codes.Aborted, "%s %s: its copy is being stopped; retry", rpc, target)
	}
	return nil
}

// ListSnapshots lists this cluster's snapshots: of one ID, of one source
// volume, or of every share this process took snapshots on; see knownShares.
func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "ListSnapshots: max_entries %d is negative", req.GetMaxEntries())
	}
	var shares []nfs.Volume
	keep := func(nfs.SnapshotRecord) bool { return true }
	switch {
	case req.GetSnapshotId() != "":
		snap, err := nfs.ParseSnapshotID(req.GetSnapshotId())
		if err != nil {
			return &csi.ListSnapshotsResponse{}, nil
		}
		shares = []nfs.Volume{snap.ShareVolume()}
		keep = func(r nfs.SnapshotRecord) bool { return r.ID == req.GetSnapshotId() }
	case req.GetSourceVolumeId() != "":
		vol, err := nfs.ParseVolumeID(req.GetSourceVolumeId())
		if err != nil {
			return &csi.ListSnapshotsResponse{}, nil
		}
		shares = []nfs.Volume{vol}
		keep = func(r nfs.SnapshotRecord) bool { return r.SourceVolumeID == req.GetSourceVolumeId() }
	default:
		shares = d.snapShares.list()
	}
	var recs []nfs.SnapshotRecord
	for _, v := range shares {
		err := d.withShare(ctx, v, func(sh *nfs.Share) error {
			dirFd, ok, err := nfs.LookupSnapshotDir(sh)
			if err != nil || !ok {
				return err
			}
			defer unix.Close(dirFd)
			list, err := nfs.ListSnapshotRecords(dirFd)
			for _, r := range list {
				if keep(r) && !r.ForeignTo(d.cfg.ClusterID) {
					recs = append(recs, r)
				}
			}
			return err
		})
		if err != nil {
			st := status.Convert(d.nfsStatus(err, v.ShareSource(), v))
			return nil, status.Errorf(st.Code(), "ListSnapshots: the snapshots of share %s: %s", v.ShareSource(), st.Message())
		}
		if len(recs) > 0 {
			d.snapShares.add(v)
		}
	}
	slices.SortFunc(recs, func(a, b nfs.SnapshotRecord) int { return strings.Compare(a.ID, b.ID) })
	recs = slices.CompactFunc(recs, func(a, b nfs.SnapshotRecord) bool { return a.ID == b.ID })
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(recs) {
			return nil, status.Errorf(codes.Aborted, "ListSnapshots: starting_token %q is not a position in the %d snapshots listed; list again from the start", tok, len(recs))
		}
		start = n
	}
	end := len(recs)
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
	}
	resp := &csi.ListSnapshotsResponse{}
	for _, r := range recs[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(r)})
	}
	if end < len(recs) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}
