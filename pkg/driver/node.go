package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

var nodeCapabilities = []csi.NodeServiceCapability_RPC_Type{
	csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
}

// NodeGetCapabilities lists the node RPCs implemented below. There is no
// staging: an NFS directory is mounted straight at each target.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, c := range nodeCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

// NodeGetInfo returns the node ID. NFS volumes have no per-node limit and no
// topology.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

// publications remembers the access mode of each target this process
// published, to refuse a second target for a SINGLE_NODE_SINGLE_WRITER volume.
type publications struct {
	mu      sync.Mutex
	targets map[string]map[string]csi.VolumeCapability_AccessMode_Mode // volume ID -> target -> mode
	count   prometheus.Gauge                                           // the number of targets
}

func newPublications(count prometheus.Gauge) *publications {
	return &publications{targets: map[string]map[string]csi.VolumeCapability_AccessMode_Mode{}, count: count}
}

// conflict returns another target that makes publishing id at target with
// mode a second writer where only one is allowed.
func (p *publications) conflict(id, target string, mode csi.VolumeCapability_AccessMode_Mode) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for other, otherMode := range p.targets[id] {
		if other == target {
			continue
		}
		if mode == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER || otherMode == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
			return other, true
		}
	}
	return "", false
}

func (p *publications) add(id, target string, mode csi.VolumeCapability_AccessMode_Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.targets[id] == nil {
		p.targets[id] = map[string]csi.VolumeCapability_AccessMode_Mode{}
	}
	if _, ok := p.targets[id][target]; !ok {
		p.count.Inc()
	}
	p.targets[id][target] = mode
}

func (p *publications) targetsOf(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for t := range p.targets[id] {
		out = append(out, t)
	}
	return out
}

func (p *publications) remove(id, target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.targets[id][target]; ok {
		p.count.Dec()
	}
	delete(p.targets[id], target)
	if len(p.targets[id]) == 0 {
		delete(p.targets, id)
	}
}

// nodeVolume finds what to mount: from the volume context when it names a
// server (static PVs written by hand, and everything this driver
// provisioned), otherwise from the ID.
func nodeVolume(id string, vc map[string]string) (nfs.Volume, error) {
	// Keys are case-insensitive, as in the StorageClass; two spellings of
	// one key (a hand-written static PV) are refused rather than one of them
	// picked at random.
	attrs := map[string]string{}
	for _, key := range []string{ParamServer, ParamShare, ParamSubDir, ParamMountOptions} {
		var found []string
		for k, v := range vc {
			if strings.EqualFold(k, key) {
				found = append(found, k)
				attrs[key] = strings.TrimSpace(v)
			}
		}
		if len(found) > 1 {
			slices.Sort(found)
			return nfs.Volume{}, status.Errorf(codes.InvalidArgument,
				"volume %s: volumeAttributes %q and %q are the same attribute (names are case-insensitive); keep one in the PersistentVolume", id, found[0], found[1])
		}
	}
	get := func(key string) string { return attrs[key] }
	server, share := get(ParamServer), get(ParamShare)
	if server == "" && share == "" {
		vol, err := nfs.ParseVolumeID(id)
		if err != nil {
			return vol, status.Errorf(codes.NotFound, "volume %s: the volume context names no server and share, and %v", id, err)
		}
		return vol, nil
	}
	opts, err := nfs.ParseMountOptions(get(ParamMountOptions))
	if err != nil {
		return nfs.Volume{}, status.Errorf(codes.InvalidArgument, "volume %s: volumeAttributes %s: %v", id, ParamMountOptions, err)
	}
	vol := nfs.Volume{Server: server, Share: share, SubDir: get(ParamSubDir), OnDelete: nfs.OnDeleteRetain, MountOptions: opts}
	if err := vol.Validate(); err != nil {
		return vol, status.Errorf(codes.InvalidArgument, "volume %s: volumeAttributes: %v", id, err)
	}
	return vol, nil
}

// NodePublishVolume mounts server:/share/subDir at the target path.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, vc := req.GetVolumeId(), req.GetTargetPath(), req.GetVolumeCapability()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "NodePublishVolume: volume ID is required")
	}
	if target == "" {
		return nil, status.Errorf(codes.InvalidArgument, "NodePublishVolume %s: target path is required", id)
	}
	if vc == nil {
		return nil, status.Errorf(codes.InvalidArgument, "NodePublishVolume %s: volume capability is required", id)
	}
	if msg := validateCapability(vc); msg != "" {
		return nil, status.Errorf(codes.InvalidArgument, "NodePublishVolume %s: %s", id, msg)
	}
	vol, err := nodeVolume(id, req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	readOnly := req.GetReadonly() || isReadOnlyMode(vc)
	opts := nfs.MergeMountOptions(vol.MountOptions, capabilityMountFlags(vc))
	if readOnly {
		opts = nfs.MergeMountOptions(opts, []string{"ro"})
	}
	if err := nfs.CheckMountOptions(opts); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "NodePublishVolume %s at %s: %v", id, target, err)
	}
	mode := vc.GetAccessMode().GetMode()
	source := vol.Source()

	_, err = runLocked(d, ctx, id, func(ctx context.Context) (struct{}, error) {
		mps, err := d.mounter.MountPoints()
		if err != nil {
			return struct{}{}, status.Errorf(codes.Internal, "NodePublishVolume %s at %s: %v", id, target, err)
		}
		if mp, ok := nfs.LookupMount(mps, target); ok {
			if mp.Source != source {
				return struct{}{}, status.Errorf(codes.AlreadyExists, "NodePublishVolume %s: target %s already has %s mounted, not %s", id, target, mp.Source, source)
			}
			if mp.ReadOnly() != readOnly {
				return struct{}{}, status.Errorf(codes.AlreadyExists, "NodePublishVolume %s: %s is already mounted at %s with readonly=%v; unpublish it first", id, source, target, mp.ReadOnly())
			}
			if !nfs.IsStale(d.checkMounted(ctx, target)) {
				d.pubs.add(id, target, mode)
				d.sizes.set(target, req.GetVolumeContext())
				return struct{}{}, nil
			}
			klog.InfoS("Remounting a stale NFS mount", "volumeID", id, "target", target, "source", source)
			if err := d.mounter.Unmount(ctx, target); err != nil {
				return struct{}{}, d.unmountStatus("NodePublishVolume", id, target, err)
			}
		}
		if other, busy := d.pubs.conflict(id, target, mode); busy {
			return struct{}{}, status.Errorf(codes.FailedPrecondition,
				"NodePublishVolume %s: the volume is already published at %s on this node, and a SINGLE_NODE_SINGLE_WRITER volume has one writer only", id, other)
		}
		if mode == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
			for _, mp := range mps {
				if mp.Source == source && mp.Path != target {
					return struct{}{}, status.Errorf(codes.FailedPrecondition,
						"NodePublishVolume %s: %s is already mounted at %s on this node, and a SINGLE_NODE_SINGLE_WRITER volume has one writer only", id, source, mp.Path)
				}
			}
		}
		if err := os.MkdirAll(target, 0o750); err != nil {
			return struct{}{}, status.Errorf(codes.Internal, "NodePublishVolume %s: create target %s: %v", id, target, err)
		}
		if err := d.mounter.Mount(ctx, source, target, opts); err != nil {
			return struct{}{}, d.nfsStatus(err, id, vol)
		}
		d.pubs.add(id, target, mode)
		d.sizes.set(target, req.GetVolumeContext())
		d.walker.Forget(target) // a fresh mount: no figure or stop of an earlier one applies
		klog.InfoS("Volume published", "volumeID", id, "source", source, "target", target, "readonly", readOnly, "options", opts)
		return struct{}{}, nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// statTimeout bounds the health checks on a mounted volume; kubelet calls
// NodeGetVolumeStats often and must not wait long for a dead server.
const statTimeout = 5 * time.Second

// checkMounted runs the health probe of a mounted volume, bounded by statTimeout.
func (d *Driver) checkMounted(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, statTimeout)
	defer cancel()
	return d.stats.Check(ctx, path)
}

// unmountStatus explains a failed unmount of target. A busy mount on a
// server that answers is FailedPrecondition: the admin has to stop what holds
// it, and the kubelet's retries then succeed.
func (d *Driver) unmountStatus(rpc, id, target string, err error) error {
	var busy *nfs.MountBusyError
	if errors.As(err, &busy) {
		return status.Errorf(codes.FailedPrecondition,
			"%s %s: %s is still in use on node %s (a process outside the pod's containers has a file or its working directory open in it), and its NFS server answers, so it was left mounted: "+
				"forcing it would fail the I/O of every other pod using this export on the node. Find the process with 'fuser -vm %s' and stop it; the kubelet retries, and the unmount succeeds once nothing uses the mount",
			rpc, id, target, d.cfg.NodeID, target)
	}
	return status.Errorf(codes.Internal, "%s %s: unmount %s: %v", rpc, id, target, err)
}

// walkStopWait bounds how long NodeUnpublishVolume waits for a usage walk
// of the target to end; a walk stuck on a dead server is not waited for.
const walkStopWait = 5 * time.Second

// NodeUnpublishVolume unmounts the target and removes it. It returns in
// bounded time even when the server is gone (the unmount escalates to forced
// and lazy), so pods do not hang in Terminating. A busy mount on a server
// that answers is not forced: the call fails and the kubelet retries.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "NodeUnpublishVolume: volume ID is required")
	}
	if target == "" {
		return nil, status.Errorf(codes.InvalidArgument, "NodeUnpublishVolume %s: target path is required", id)
	}
	_, err := runLocked(d, ctx, id, func(ctx context.Context) (struct{}, error) {
		// A background usage walk holds directories of the mount open: end
		// it first, or the unmount finds the mount busy.
		d.walker.Stop(target, walkStopWait)
		// Walks may start again once this call is over: after a failed
		// unmount the volume is still published and its stats still wanted.
		defer d.walker.Forget(target)
		// Stacked mounts (a retried publish racing a crash) come off one by one.
		for range 5 {
			_, mounted, err := nfs.FindMount(d.mounter, target)
			if err != nil {
				return struct{}{}, status.Errorf(codes.Internal, "NodeUnpublishVolume %s at %s: %v", id, target, err)
			}
			if !mounted {
				break
			}
			if err := d.mounter.Unmount(ctx, target); err != nil {
				return struct{}{}, d.unmountStatus("NodeUnpublishVolume", id, target, err)
			}
		}
		d.metrics.volumes.forget(id, target)
		if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
			if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
				return struct{}{}, status.Errorf(codes.FailedPrecondition, "NodeUnpublishVolume %s: target %s is not mounted but not empty; refusing to delete its contents", id, target)
			}
			return struct{}{}, status.Errorf(codes.Internal, "NodeUnpublishVolume %s: remove target %s: %v", id, target, err)
		}
		d.pubs.remove(id, target)
		d.sizes.remove(target)
		klog.InfoS("Volume unpublished", "volumeID", id, "target", target)
		return struct{}{}, nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports the file-system figures of a published volume.
// It never waits on a dead server longer than statTimeout: it fails with
// Unavailable instead, and NodeGetVolumeHealth says why.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "NodeGetVolumeStats: volume ID is required")
	}
	if path == "" {
		return nil, status.Errorf(codes.InvalidArgument, "NodeGetVolumeStats %s: volume path is required", id)
	}
	mp, mounted, err := nfs.FindMount(d.mounter, path)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeGetVolumeStats %s at %s: %v", id, path, err)
	}
	if !mounted {
		d.metrics.volumes.forget(id, path)
		return nil, status.Errorf(codes.NotFound, "NodeGetVolumeStats %s: no volume is mounted at %s", id, path)
	}
	sctx, cancel := context.WithTimeout(ctx, statTimeout)
	defer cancel()
	u, err := d.stats.Usage(sctx, path)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "NodeGetVolumeStats %s: %s", id, statProblem(mp.Source, path, err))
	}
	u, source := d.volumeUsage(ctx, path, u)
	d.metrics.volumes.observe(id, path, ownFigures(d.sizes.get(path), u, source), func() bool {
		_, mounted, err := nfs.FindMount(d.mounter, path)
		return err == nil && mounted
	})
	klog.V(4).InfoS("Volume stats", "volumeID", id, "path", path, "source", source, "usedBytes", u.UsedBytes, "totalBytes", u.TotalBytes)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: u.TotalBytes, Available: u.AvailableBytes, Used: u.UsedBytes},
		{Unit: csi.VolumeUsage_INODES, Total: u.TotalInodes, Available: u.FreeInodes, Used: u.UsedInodes},
	}}, nil
}

// statProblem explains a failed statfs of a mounted volume, and gives the
// reason code NodeGetVolumeHealth reports.
func statProblem(source, path string, err error) string {
	if nfs.IsStale(err) {
		return fmt.Sprintf("stale NFS file handle for %s at %s: the directory was removed or the export recreated on the server; restart the pod to remount", source, path)
	}
	return fmt.Sprintf("NFS server not responding for %s at %s: %v", source, path, err)
}

func statReason(err error) string {
	if nfs.IsStale(err) {
		return "StaleFileHandle"
	}
	return "ServerNotResponding"
}

// NodeGetVolumeHealth checks each publication of the volume on this node (or
// the one path given) with a bounded statfs. (CSI v1.13 moved the former
// VolumeCondition of NodeGetVolumeStats here.)
func (d *Driver) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "NodeGetVolumeHealth: volume ID is required")
	}
	paths := d.pubs.targetsOf(id)
	if p := req.GetVolumePublishPath(); p != "" {
		paths = []string{p}
	}
	health := &csi.VolumeHealth{VolumeId: id}
	mps, err := d.mounter.MountPoints()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeGetVolumeHealth %s: %v", id, err)
	}
	// The spec allows one entry per (status, reason): problems of several
	// publications of the volume share an entry.
	problems := map[string][]string{}
	var reasons []string
	report := func(reason, msg string) {
		if problems[reason] == nil {
			reasons = append(reasons, reason)
		}
		problems[reason] = append(problems[reason], msg)
	}
	for _, p := range paths {
		mp, ok := nfs.LookupMount(mps, p)
		if !ok {
			report("NotMounted", fmt.Sprintf("volume %s is not mounted at %s", id, p))
			continue
		}
		if err := d.checkMounted(ctx, p); err != nil {
			report(statReason(err), statProblem(mp.Source, p, err))
		}
	}
	for _, r := range reasons {
		health.HealthStatuses = append(health.HealthStatuses, inaccessible(r, strings.Join(problems[r], "; ")))
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: health}, nil
}
