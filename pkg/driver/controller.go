package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

var controllerCapabilities = []csi.ControllerServiceCapability_RPC_Type{
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
	csi.ControllerServiceCapability_RPC_GET_VOLUME,
	csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
	csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	csi.ControllerServiceCapability_RPC_GET_CAPACITY,
}

// ControllerGetCapabilities lists exactly the RPCs implemented below.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range controllerCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

// requestedCapacity reads a CapacityRange. NFS subdirectories have no size of
// their own (yet): the volume reports the size asked for.
func requestedCapacity(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, fmt.Errorf("capacity range has a negative value (required %d, limit %d)", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, fmt.Errorf("capacity range is empty: required %d bytes is more than the limit %d bytes", req, lim)
	}
	if req == 0 {
		return lim, nil
	}
	return req, nil
}

func capacityFits(capacity int64, r *csi.CapacityRange) bool {
	return capacity >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || capacity <= r.GetLimitBytes())
}

// CreateVolume makes a subdirectory on the share and records it.
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateVolume: name is required")
	}
	if msg := validateCapabilities(req.GetVolumeCapabilities()); msg != "" {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: %s", name, msg)
	}
	capacity, err := requestedCapacity(req.GetCapacityRange())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: %v", name, err)
	}
	params, err := parseCreateParams(req.GetParameters())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: %v", name, err)
	}
	subDir := name
	if params.SubDirTemplate != "" {
		if subDir, err = nfs.ExpandSubDir(params.SubDirTemplate, params.TemplateValues); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: parameter %s: %v", name, ParamSubDir, err)
		}
	} else if err := nfs.ValidateComponent(name); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: the volume name is the default subDir, and %v; set a subDir template", name, err)
	}
	if err := nfs.ValidateSubDir(subDir); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s: %v", name, err)
	}
	vol := nfs.Volume{
		Server:       params.Server,
		Share:        params.Share,
		SubDir:       subDir,
		OnDelete:     params.OnDelete,
		MountOptions: nfs.MergeMountOptions(params.MountOptions, capabilityMountFlags(req.GetVolumeCapabilities()...)),
	}
	if err := nfs.CheckMountOptions(vol.MountOptions); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CreateVolume %s on %s:%s: %v", name, params.Server, params.Share, err)
	}
	id := vol.ID()
	rec := nfs.Record{
		Name: name, VolumeID: id, CapacityBytes: capacity, MountPermissions: formatPermissions(params.MountPermissions), ClusterID: d.cfg.ClusterID,
		ClaimNamespace: params.TemplateValues[nfs.VarPVCNamespace], ClaimName: params.TemplateValues[nfs.VarPVCName],
		QuotaAgent: params.QuotaAgent,
	}
	if rec.QuotaAgent != "" {
		if err := d.checkAgent(ctx, vol, rec, req.GetSecrets()); err != nil {
			return nil, err
		}
	}
	opts := nfs.ProvisionOptions{
		Perm:          params.MountPermissions,
		AdoptExisting: params.AdoptExisting,
	}
	if src := req.GetVolumeContentSource(); src != nil {
		return d.createFilledVolume(ctx, req, src, vol, rec, opts)
	}
	opts.Compatible = func(stored nfs.Record) error {
		return compatibleRecord(stored, rec, req.GetCapacityRange(), vol)
	}

	stored, err := runLocked(d, ctx, id, func(ctx context.Context) (nfs.Record, error) {
		var stored nfs.Record
		err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
			var err error
			stored, err = nfs.Provision(sh, vol, rec, opts)
			return err
		})
		if err == nil && stored.QuotaAgent != "" {
			err = d.enforce(ctx, "CreateVolume", vol, stored, req.GetSecrets())
		}
		return stored, err
	})
	if err != nil {
		return nil, d.createError(err, name, vol)
	}
	klog.InfoS("Volume created", "name", name, "volumeID", id, "path", vol.Source(), "capacity", describeCapacity(stored))
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: stored.CapacityBytes,
		VolumeContext: withRecordCapacity(VolumeContext(vol), stored),
	}}, nil
}

// errConflict marks a CreateVolume that collides with an existing volume.
var errConflict = errors.New("conflict")

func compatibleRecord(stored, want nfs.Record, r *csi.CapacityRange, vol nfs.Volume) error {
	switch {
	case stored.ForeignTo(want.ClusterID):
		return fmt.Errorf("%w: subdirectory %s on %s already belongs to volume %q of cluster %q, and this controller %s; a volume of another cluster is never claimed. Give each cluster its own share or subDir (for example a subDir template that starts with the cluster's name)",
			errConflict, vol.SubDir, vol.ShareSource(), stored.Name, stored.ClusterID, nfs.DescribeClusterID(want.ClusterID))
	case !stored.HasName(want.Name):
		return fmt.Errorf("%w: subdirectory %s on %s already belongs to volume %q; make the subDir template unique per PVC, such as ${pvc.metadata.namespace}/${pvc.metadata.name}",
			errConflict, vol.SubDir, vol.ShareSource(), stored.Name)
	case !stored.IsVolume(want.VolumeID):
		return fmt.Errorf("%w: volume %q exists as %s, with other parameters", errConflict, stored.Name, stored.VolumeID)
	case stored.QuotaAgent != want.QuotaAgent:
		return fmt.Errorf("%w: volume %q exists with its capacity %s, not %s", errConflict, stored.Name, describeCapacity(stored), describeCapacity(want))
	case stored.MountPermissions != want.MountPermissions:
		return fmt.Errorf("%w: volume %q exists with mountPermissions %q, not %q", errConflict, stored.Name, stored.MountPermissions, want.MountPermissions)
	case !capacityFits(stored.CapacityBytes, r):
		return fmt.Errorf("%w: volume %q exists with capacity %d bytes, outside the requested range (required %d, limit %d)",
			errConflict, stored.Name, stored.CapacityBytes, r.GetRequiredBytes(), r.GetLimitBytes())
	}
	return nil
}

func (d *Driver) createError(err error, name string, vol nfs.Volume) error {
	if errors.Is(err, errConflict) || errors.Is(err, nfs.ErrNested) || errors.Is(err, nfs.ErrAdoption) || errors.Is(err, nfs.ErrNameTaken) {
		return status.Errorf(codes.AlreadyExists, "CreateVolume %s (volume %s): %v", name, vol.ID(), err)
	}
	return d.nfsStatus(err, vol.ID(), vol)
}

// DeleteVolume applies the volume's delete policy. An ID this driver cannot
// parse, or a volume already gone, is success: there is nothing to delete.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "DeleteVolume: volume ID is required")
	}
	vol, err := nfs.ParseVolumeID(id)
	if err != nil {
		klog.InfoS("DeleteVolume of an ID that is not ours; nothing to do", "volumeID", id, "reason", err)
		return &csi.DeleteVolumeResponse{}, nil
	}
	type outcome struct {
		done       nfs.Disposal
		archivedAs string
	}
	out, err := runLocked(d, ctx, id, func(ctx context.Context) (outcome, error) {
		var o outcome
		if j := d.copies.readingFrom(id); j != nil {
			return o, status.Errorf(codes.Aborted, "DeleteVolume %s: %s is being copied into %s (a snapshot or a clone); the deletion is retried once that copy ends", id, vol.Source(), j.target)
		}
		if err := d.stopCopy(ctx, "DeleteVolume", id); err != nil {
			return o, err
		}
		err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
			if err := d.unenforceBeforeDispose(ctx, sh, vol, req.GetSecrets()); err != nil {
				return err
			}
			var err error
			o.done, o.archivedAs, err = nfs.Dispose(sh, vol, d.cfg.ClusterID, time.Now())
			return err
		})
		return o, err
	})
	if err != nil {
		var foreign *nfs.ForeignClusterError
		if errors.As(err, &foreign) {
			klog.InfoS("DeleteVolume refused: the volume's creation record names another cluster; nothing was changed",
				"volumeID", id, "path", vol.Source(), "recordClusterID", foreign.RecordCluster, "clusterID", d.cfg.ClusterID)
		}
		if errors.Is(err, nfs.ErrNested) {
			return nil, status.Errorf(codes.FailedPrecondition, "DeleteVolume %s: %v", id, err)
		}
		var busy *nfs.BusyError
		if errors.As(err, &busy) {
			return nil, status.Errorf(codes.FailedPrecondition,
				"DeleteVolume %s: %s on %s is still in use: %v. Stop the pods that use it on other nodes; the deletion is retried", id, vol.SubDir, vol.ShareSource(), err)
		}
		return nil, deleteStatus(d.nfsStatus(err, id, vol), id, vol)
	}
	klog.InfoS("Volume deleted", "volumeID", id, "path", vol.Source(), "policy", vol.OnDelete, "result", out.done, "archivedAs", out.archivedAs)
	return &csi.DeleteVolumeResponse{}, nil
}

// deleteStatus keeps DeleteVolume's errors within the codes the CSI spec
// gives it. It has no NOT_FOUND (a volume that is gone is success), so a share
// the controller cannot find on the server ("no such export") is Unavailable:
// the volume may well still be there once the export is back, and the
// provisioner retries.
func deleteStatus(err error, id string, vol nfs.Volume) error {
	s := status.Convert(err)
	if s.Code() != codes.NotFound {
		return err
	}
	return status.Errorf(codes.Unavailable,
		"DeleteVolume %s: the controller cannot mount the share %s to delete %s, so nothing was deleted; the deletion is retried. "+
			"Check the export on the server (exportfs -v); if the share is gone for good, set the PV's reclaim policy to Retain and delete the PV: %s",
		id, vol.ShareSource(), vol.SubDir, s.Message())
}

// withShare runs fn on the mounted share of vol, replacing the mount and
// trying once more if its handles turn out to be stale.
func (d *Driver) withShare(ctx context.Context, vol nfs.Volume, fn func(*nfs.Share) error) error {
	for attempt := 0; ; attempt++ {
		sh, err := d.shares.Acquire(ctx, vol.Server, vol.Share, vol.MountOptions)
		if err != nil {
			return err
		}
		err = fn(sh)
		stale := nfs.IsStale(err)
		if stale {
			sh.MarkStale()
		}
		sh.Release()
		if !stale || attempt > 0 {
			return err
		}
	}
}

// volumeExists looks the volume's directory up on the share.
func (d *Driver) volumeExists(ctx context.Context, vol nfs.Volume) (bool, error) {
	return runLocked(d, ctx, vol.ID(), func(ctx context.Context) (bool, error) {
		var ok bool
		err := d.withShare(ctx, vol, func(sh *nfs.Share) error {
			var err error
			ok, err = nfs.DirExists(sh, vol.SubDir)
			return err
		})
		return ok, err
	})
}

// lookupVolume parses an ID and checks that the directory exists, with NotFound
// for both failures.
func (d *Driver) lookupVolume(ctx context.Context, rpc, id string) (nfs.Volume, error) {
	vol, err := nfs.ParseVolumeID(id)
	if err != nil {
		return vol, status.Errorf(codes.NotFound, "%s: %v", rpc, err)
	}
	ok, err := d.volumeExists(ctx, vol)
	if err != nil {
		return vol, d.nfsStatus(err, id, vol)
	}
	if !ok {
		return vol, status.Errorf(codes.NotFound, "%s: volume %s does not exist: no directory %s on %s", rpc, id, vol.SubDir, vol.ShareSource())
	}
	return vol, nil
}

// ValidateVolumeCapabilities confirms the capabilities of an existing volume.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "ValidateVolumeCapabilities: volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "ValidateVolumeCapabilities %s: volume capabilities are required", id)
	}
	if _, err := d.lookupVolume(ctx, "ValidateVolumeCapabilities", id); err != nil {
		return nil, err
	}
	if msg := validateCapabilities(req.GetVolumeCapabilities()); msg != "" {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: msg}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
		MutableParameters:  req.GetMutableParameters(),
	}}, nil
}

// ControllerPublishVolume is bookkeeping for NFS: there is nothing to attach.
// It exists so that Kubernetes runs attach/detach, which is how it enforces
// ReadWriteOnce and ReadWriteOncePod across nodes. It checks the request and
// the node, and never touches NFS, so that a network problem between the
// controller and a server cannot stop pods whose nodes reach it.
func (d *Driver) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "ControllerPublishVolume: volume ID is required")
	}
	if node == "" {
		return nil, status.Errorf(codes.InvalidArgument, "ControllerPublishVolume %s: node ID is required", id)
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Errorf(codes.InvalidArgument, "ControllerPublishVolume %s: volume capability is required", id)
	}
	if msg := validateCapability(req.GetVolumeCapability()); msg != "" {
		return nil, status.Errorf(codes.InvalidArgument, "ControllerPublishVolume %s: %s", id, msg)
	}
	// The share is not mounted here: whether the directory is there, and
	// whether the node reaches the server, only the node's own mount can
	// tell, and it reports both. See docs/design.md#controllerpublishvolume.
	if _, err := publishedVolume(id, req.GetVolumeContext()); err != nil {
		return nil, err
	}
	ok, err := d.nodes.Exists(ctx, node)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "ControllerPublishVolume %s: cannot check node %s: %v", id, node, err)
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "ControllerPublishVolume %s: node %s does not run the %s node plugin", id, node, d.cfg.DriverName)
	}
	return &csi.ControllerPublishVolumeResponse{}, nil
}

// publishedVolume resolves the volume a publish request names the way the
// node does (nodeVolume): from the volume context when it names a server and
// share, so that static PVs with a free-form handle (docs/volume-id.md) and
// PVs written for other NFS drivers attach; otherwise from the ID.
func publishedVolume(id string, vc map[string]string) (nfs.Volume, error) {
	vol, err := nodeVolume(id, vc)
	if err != nil {
		s := status.Convert(err)
		return vol, status.Errorf(s.Code(), "ControllerPublishVolume: %s", s.Message())
	}
	return vol, nil
}

// ControllerUnpublishVolume has nothing to undo; it always succeeds for a
// well-formed request, as the spec asks for unknown volumes and nodes.
func (d *Driver) ControllerUnpublishVolume(_ context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "ControllerUnpublishVolume: volume ID is required")
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// ControllerGetVolume returns an existing volume; NotFound when its
// directory is gone.
func (d *Driver) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "ControllerGetVolume: volume ID is required")
	}
	vol, err := d.lookupVolume(ctx, "ControllerGetVolume", id)
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: &csi.Volume{VolumeId: id, VolumeContext: VolumeContext(vol)},
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{},
	}, nil
}

// controllerHealthTimeout bounds ControllerGetVolumeHealth's check, below the
// external-health-monitor's default 15 s call timeout, so that a server that
// does not answer is reported as such instead of the call timing out.
const controllerHealthTimeout = 10 * time.Second

// ControllerGetVolumeHealth reports, from the controller's side, whether the
// server answers and the directory is there. (CSI v1.13 moved the former
// VolumeCondition of ControllerGetVolume here.) Only what the check learnt
// about the server becomes a health entry; a held lock or the caller's own
// deadline is an error.
func (d *Driver) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "ControllerGetVolumeHealth: volume ID is required")
	}
	vol, err := nfs.ParseVolumeID(id)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "ControllerGetVolumeHealth: %v", err)
	}
	health := &csi.VolumeHealth{VolumeId: id}
	cctx, cancel := context.WithTimeout(ctx, controllerHealthTimeout)
	defer cancel()
	ok, err := d.volumeExists(cctx, vol)
	switch {
	case status.Code(err) == codes.Aborted:
		// Another operation holds the volume's lock (a CreateVolume or
		// DeleteVolume in progress, or an earlier check still blocked on the
		// server): nothing was checked, and an entry would raise a false
		// alarm on a healthy volume. The monitor asks again next period.
		return nil, status.Errorf(codes.Aborted, "ControllerGetVolumeHealth %s: another operation on this volume is in progress, so its health was not checked; retry later", id)
	case err != nil && ctx.Err() != nil:
		// The caller gave up first: its deadline says nothing about the server.
		return nil, d.nfsStatus(ctx.Err(), id, vol)
	case err != nil:
		health.HealthStatuses = append(health.HealthStatuses, inaccessible("ServerUnreachable",
			fmt.Sprintf("the controller cannot reach %s: %v", vol.ShareSource(), err)))
	case !ok:
		health.HealthStatuses = append(health.HealthStatuses, inaccessible("DirectoryMissing",
			fmt.Sprintf("directory %s is missing on %s", vol.SubDir, vol.ShareSource())))
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: health}, nil
}

func inaccessible(reason, msg string) *csi.VolumeHealth_VolumeHealthEntry {
	return &csi.VolumeHealth_VolumeHealthEntry{Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: reason, Message: msg}
}
