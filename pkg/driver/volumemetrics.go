package driver

import (
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/example/nfs-csi/pkg/nfs"
)

// volumeFigures are the figures of one volume that the per-volume gauges
// carry: only the volume's own, never the whole share's.
type volumeFigures struct {
	used     int64
	haveUsed bool
	limit    int64
	// limitKind is the capacity label of the limit (CapacityEnforced or
	// CapacityRecorded); empty when the node knows no limit.
	limitKind string
}

// ownFigures picks from what NodeGetVolumeStats computed for a volume
// (usage u from source, see UsageSourceHeader) the figures that are the
// volume's own:
//   - "quota": the mount's statfs, which the project quota makes the
//     volume's usage and limit (an expansion shows at once);
//   - "walk", "walk-partial": the walked usage (a lower bound when partial)
//     and the size recorded at creation, from the volume context;
//   - "share": the statfs of the whole share, so no usage yet, only the
//     recorded size.
//
// A volume whose context this process never saw (published before the
// node plugin restarted) has no limit here: its statfs total may be the
// share's.
func ownFigures(info sizeInfo, u nfs.Usage, source string) volumeFigures {
	var f volumeFigures
	switch source {
	case "quota":
		return volumeFigures{used: u.UsedBytes, haveUsed: true, limit: u.TotalBytes, limitKind: CapacityEnforced}
	case "walk", "walk-partial":
		f.used, f.haveUsed = u.UsedBytes, true
	}
	if info.capacity > 0 {
		f.limit, f.limitKind = info.capacity, CapacityRecorded
	}
	return f
}

// volumeBytes keeps nfs_csi_volume_used_bytes and nfs_csi_volume_limit_bytes
// on the node: one series per volume whose stats were asked for, set from
// the figures the last NodeGetVolumeStats computed (a scrape never stats
// anything) and deleted once no target of the volume that set them is
// mounted any more, so that unpublished volumes leave no series behind.
type volumeBytes struct {
	used  *prometheus.GaugeVec // volume_id
	limit *prometheus.GaugeVec // volume_id, capacity

	mu sync.Mutex
	// targets are, per volume ID, the target paths whose stats set its
	// series; limitKind the capacity label its limit series has.
	targets   map[string]map[string]bool
	limitKind map[string]string
}

func newVolumeBytes() *volumeBytes {
	return &volumeBytes{
		used: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nfs_csi_volume_used_bytes",
			Help: "Bytes a volume published on this node uses, from its last NodeGetVolumeStats: the project quota's usage (capacity: enforced) or the background walk of its directory (recorded).",
		}, []string{"volume_id"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nfs_csi_volume_limit_bytes",
			Help: "The size of a volume published on this node, from its last NodeGetVolumeStats: its project quota's limit (capacity=enforced, writes past it fail) or the size recorded at creation (capacity=recorded, nothing stops writes past it).",
		}, []string{"volume_id", "capacity"}),
		targets:   map[string]map[string]bool{},
		limitKind: map[string]string{},
	}
}

func (v *volumeBytes) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.used, v.limit}
}

// observe sets the series of volume id from figures f that a stats call of
// target computed, if target is still mounted: a stats call that ends after
// the target's NodeUnpublishVolume must not bring its series back. mounted
// reads the mount table (never NFS); forget runs after the unmount, and
// both hold v.mu, so one of them sees the other's work.
func (v *volumeBytes) observe(id, target string, f volumeFigures, mounted func() bool) {
	target = filepath.Clean(target)
	v.mu.Lock()
	defer v.mu.Unlock()
	if !mounted() {
		return
	}
	if v.targets[id] == nil {
		v.targets[id] = map[string]bool{}
	}
	v.targets[id][target] = true
	if f.haveUsed {
		v.used.WithLabelValues(id).Set(float64(f.used))
	}
	if f.limitKind == "" {
		return
	}
	if old, ok := v.limitKind[id]; ok && old != f.limitKind {
		v.limit.DeleteLabelValues(id, old)
	}
	v.limitKind[id] = f.limitKind
	v.limit.WithLabelValues(id, f.limitKind).Set(float64(f.limit))
}

// forget is called when target is no longer mounted; the volume's series
// go with its last target.
func (v *volumeBytes) forget(id, target string) {
	target = filepath.Clean(target)
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.targets[id], target)
	if len(v.targets[id]) > 0 {
		return
	}
	delete(v.targets, id)
	v.used.DeleteLabelValues(id)
	if kind, ok := v.limitKind[id]; ok {
		v.limit.DeleteLabelValues(id, kind)
		delete(v.limitKind, id)
	}
}
