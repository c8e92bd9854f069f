//go:build e2e

package framework

import (
	"context"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/example/nfs-csi/pkg/driver"
)

// VolumeStats is what NodeGetVolumeStats answered for one published volume.
type VolumeStats struct {
	Bytes, Inodes *csi.VolumeUsage
	// Source is the driver's nfs-csi-usage-source header (quota, walk or
	// share), which the kubelet does not read; the test does.
	Source string
}

// VolumeStats calls NodeGetVolumeStats for a pod's volume as the kubelet's
// volume stats collector does: the PV's volume handle and the pod's
// published target path (no staging path: the plugin has no
// STAGE_UNSTAGE_VOLUME).
func (n *Node) VolumeStats(ctx context.Context, p *Pod, volume string) (VolumeStats, error) {
	var vol *publishedVolume
	for i := range p.volumes {
		if p.volumes[i].name == volume {
			vol = &p.volumes[i]
		}
	}
	if vol == nil {
		return VolumeStats{}, fmt.Errorf("pod %s/%s has no published volume %s", p.Namespace, p.Name, volume)
	}
	conn, err := DialCSI(n.Socket)
	if err != nil {
		return VolumeStats{}, err
	}
	defer conn.Close()
	var md metadata.MD
	resp, err := csi.NewNodeClient(conn).NodeGetVolumeStats(ctx,
		&csi.NodeGetVolumeStatsRequest{VolumeId: vol.handle, VolumePath: vol.target}, grpc.Header(&md))
	if err != nil {
		return VolumeStats{}, fmt.Errorf("NodeGetVolumeStats %s at %s: %w", vol.handle, vol.target, err)
	}
	var st VolumeStats
	if v := md.Get(driver.UsageSourceHeader); len(v) > 0 {
		st.Source = v[0]
	}
	for _, u := range resp.GetUsage() {
		switch u.GetUnit() {
		case csi.VolumeUsage_BYTES:
			st.Bytes = u
		case csi.VolumeUsage_INODES:
			st.Inodes = u
		}
	}
	if st.Bytes == nil {
		return st, fmt.Errorf("NodeGetVolumeStats %s at %s: no BYTES usage in %v", vol.handle, vol.target, resp)
	}
	return st, nil
}
