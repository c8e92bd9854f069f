package driver

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/example/nfs-csi/pkg/nfs"
)

// Volume context keys that CreateVolume adds for the node's stats: whether
// a project quota holds the volume, and its size when created. (The PV's
// attributes do not follow an expansion: for an unenforced volume the node
// goes on reporting the size at creation.)
const (
	ContextCapacity      = ParamCapacity
	ContextCapacityBytes = "capacityBytes"
)

// withCapacity adds the record's capacity to a volume context.
func withRecordCapacity(vc map[string]string, rec nfs.Record) map[string]string {
	if rec.QuotaAgent != "" {
		vc[ContextCapacity] = CapacityEnforced
	}
	if rec.CapacityBytes > 0 {
		vc[ContextCapacityBytes] = strconv.FormatInt(rec.CapacityBytes, 10)
	}
	return vc
}

// UsageSourceHeader is the gRPC response header of NodeGetVolumeStats that
// says where its figures came from (the CSI message has no field for it):
//   - "quota": the statfs of the volume's own mount, which a project quota
//     on the server makes the volume's limit and usage;
//   - "walk": used bytes and inodes counted by the background walk of the
//     volume's directory, UsageAgeHeader seconds old ("walk-partial" when
//     the walk stopped early: a lower bound);
//   - "share": the statfs of the mount, which without a quota is the whole
//     share's, until the first walk of the volume ends.
const (
	UsageSourceHeader = "nfs-csi-usage-source"
	UsageAgeHeader    = "nfs-csi-usage-age-seconds"
)

// sizeInfo is what the node learnt about a published volume's size.
type sizeInfo struct {
	enforced bool
	capacity int64
}

// publishedSizes keeps sizeInfo per target path, from NodePublishVolume's
// volume context. It is lost when the plugin restarts; a volume it does not
// know is walked, and its total is then its mount's statfs, which for an
// enforced volume is still the limit.
type publishedSizes struct {
	mu sync.Mutex
	m  map[string]sizeInfo
}

func (p *publishedSizes) set(target string, vc map[string]string) {
	var info sizeInfo
	for k, v := range vc {
		switch {
		case strings.EqualFold(k, ContextCapacity):
			info.enforced = strings.EqualFold(v, CapacityEnforced)
		case strings.EqualFold(k, ContextCapacityBytes):
			info.capacity, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[target] = info
}

func (p *publishedSizes) get(target string) sizeInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[target]
}

func (p *publishedSizes) remove(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, target)
}

// volumeUsage turns the statfs of a volume's mount into the volume's own
// figures and names their source (UsageSourceHeader), which it also sends
// as response headers.
func (d *Driver) volumeUsage(ctx context.Context, path string, fs nfs.Usage) (nfs.Usage, string) {
	info := d.sizes.get(path)
	u, source, age := fs, "quota", time.Duration(0)
	if !info.enforced {
		walked, ok := d.walker.Get(path, time.Now())
		source = "share"
		if ok {
			source, age = "walk", time.Since(walked.At)
			if walked.Partial {
				source = "walk-partial"
			}
			u.UsedBytes, u.UsedInodes = walked.Bytes, walked.Inodes
			if info.capacity > 0 {
				u.TotalBytes = info.capacity
			}
			u.AvailableBytes = min(fs.AvailableBytes, max(u.TotalBytes-u.UsedBytes, 0))
		}
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(UsageSourceHeader, source, UsageAgeHeader, strconv.Itoa(int(age.Seconds()))))
	return u, source
}
