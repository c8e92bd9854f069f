package driver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

// ControllerExpandVolume raises a volume's capacity: at the quota agent
// when the class enforces it, and in the record always. Nothing on the
// node has to change (a project quota is the size of the directory's NFS
// mount at once), so node_expansion_required is false. A size that is not
// larger than the recorded one is a success that changes nothing, as the
// spec asks; a retry after a failure sets the same limit again.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "ControllerExpandVolume: volume ID is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, status.Errorf(codes.InvalidArgument, "ControllerExpandVolume %s: capacity range is required", id)
	}
	want, err := requestedCapacity(req.GetCapacityRange())
	if err == nil && want == 0 {
		err = errNoSize
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "ControllerExpandVolume %s: %v", id, err)
	}
	if c := req.GetVolumeCapability(); c != nil {
		if msg := validateCapability(c); msg != "" {
			return nil, status.Errorf(codes.InvalidArgument, "ControllerExpandVolume %s: %s", id, msg)
		}
	}
	vol, err := nfs.ParseVolumeID(id)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "ControllerExpandVolume: %v", err)
	}
	got, err := runLocked(d, ctx, id, func(ctx context.Context) (nfs.Record, error) {
		var rec nfs.Record
		err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
			var err error
			rec, err = d.expand(ctx, sh, vol, want, req.GetSecrets())
			return err
		})
		return rec, err
	})
	if err != nil {
		return nil, d.nfsStatus(err, id, vol)
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: got.CapacityBytes, NodeExpansionRequired: false}, nil
}

type expandError string

func (e expandError) Error() string { return string(e) }

const errNoSize = expandError("capacity range asks for no size (required and limit bytes are both 0)")

// expand is ControllerExpandVolume on the mounted share, under the volume's lock.
func (d *Driver) expand(ctx context.Context, sh *nfs.Share, vol nfs.Volume, want int64, secrets map[string]string) (nfs.Record, error) {
	id := vol.ID()
	store, err := sh.Records()
	if err != nil {
		return nfs.Record{}, err
	}
	rec, ok, err := store.Get(vol.SubDir)
	switch {
	case err != nil:
		return rec, err
	case !ok || rec.Tombstone || !rec.IsVolume(id):
		return rec, status.Errorf(codes.NotFound, "ControllerExpandVolume %s: no volume of this ID on %s: directory %s has no creation record of it (a static volume, or one deleted)", id, vol.ShareSource(), vol.SubDir)
	case rec.ForeignTo(d.cfg.ClusterID):
		return rec, status.Errorf(codes.FailedPrecondition, "ControllerExpandVolume %s: the volume's record names cluster %q, and this controller %s; a volume of another cluster is never changed", id, rec.ClusterID, nfs.DescribeClusterID(d.cfg.ClusterID))
	}
	exists, err := nfs.DirExists(sh, vol.SubDir)
	if err != nil {
		return rec, err
	}
	if !exists {
		return rec, status.Errorf(codes.NotFound, "ControllerExpandVolume %s: directory %s is missing on %s", id, vol.SubDir, vol.ShareSource())
	}
	if want <= rec.CapacityBytes {
		return rec, nil
	}
	next := rec
	next.CapacityBytes = want
	// The limit first, the record second: a record never promises more
	// than the server holds the volume to, and a retry redoes both.
	if rec.QuotaAgent != "" {
		if err := d.enforce(ctx, "ControllerExpandVolume", vol, next, secrets); err != nil {
			return rec, err
		}
	}
	if err := store.Update(vol.SubDir, next); err != nil {
		return rec, err
	}
	klog.InfoS("Volume expanded", "volumeID", id, "path", vol.Source(), "from", rec.CapacityBytes, "capacity", describeCapacity(next))
	return next, nil
}

// GetCapacity reports the bytes available on the share of the class's
// parameters, from a statfs of the controller's share mount. With enforced
// capacity that is what the file system still holds, not what is left
// unpromised: limits may add up to more than the disk (docs/capacity.md).
// Without parameters there is no share to ask, and the answer is 0.
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if len(req.GetParameters()) == 0 {
		return &csi.GetCapacityResponse{}, nil
	}
	for _, c := range req.GetVolumeCapabilities() {
		if msg := validateCapability(c); msg != "" {
			return nil, status.Errorf(codes.InvalidArgument, "GetCapacity: %s", msg)
		}
	}
	params, err := parseCreateParams(req.GetParameters())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "GetCapacity: %v", err)
	}
	vol := nfs.Volume{Server: params.Server, Share: params.Share, MountOptions: params.MountOptions}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.OperationTimeout)
	defer cancel()
	var u nfs.Usage
	err = d.withShare(ctx, vol, func(sh *nfs.Share) error {
		var err error
		u, err = d.stats.Usage(ctx, sh.Path())
		return err
	})
	if err != nil {
		return nil, d.nfsStatus(err, "(GetCapacity)", vol)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: u.AvailableBytes}, nil
}
