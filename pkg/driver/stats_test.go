package driver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/example/nfs-csi/pkg/nfs"
)

func bytesUsage(t *testing.T, e *env, id, target string) *csi.VolumeUsage {
	t.Helper()
	resp, err := e.d.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range resp.GetUsage() {
		if u.GetUnit() == csi.VolumeUsage_BYTES {
			return u
		}
	}
	t.Fatalf("no BYTES usage in %v", resp)
	return nil
}

// TestVolumeStatsWithoutQuotaAreTheVolumesOwn: NodeGetVolumeStats used to
// report the statfs of the mount, which without a quota is the whole
// share's, as every volume's usage.
func TestVolumeStatsWithoutQuotaAreTheVolumesOwn(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	e.writeExport(t, "pvc-1/data", string(make([]byte, 200_000)))
	e.writeExport(t, "neighbour/big", string(make([]byte, 2_000_000)))
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	// The first call starts the walk and answers with the share's figures.
	first := bytesUsage(t, e, v.GetVolumeId(), target)
	deadline := time.Now().Add(10 * time.Second)
	var source string
	for source != "walk" {
		if time.Now().After(deadline) {
			t.Fatalf("the walk did not finish; source %q", source)
		}
		time.Sleep(5 * time.Millisecond)
		_, source = e.d.volumeUsage(context.Background(), target, usageOf(first))
	}
	u := bytesUsage(t, e, v.GetVolumeId(), target)
	if u.GetUsed() < 200_000 || u.GetUsed() >= 2_000_000 {
		t.Errorf("used %d bytes, want the volume's own 200 kB, not its neighbour's 2 MB", u.GetUsed())
	}
	if u.GetTotal() != gib || u.GetAvailable() > gib-u.GetUsed() {
		t.Errorf("usage %v, want the 1 GiB asked for as total and at most total-used available", u)
	}
	if _, err := e.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.d.walker.Get(target, time.Now()); ok {
		t.Errorf("the walk's figure outlived the publication")
	}
}

func TestVolumeStatsWithQuotaAreTheMountsStatfs(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	v.VolumeContext[ContextCapacity] = CapacityEnforced
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	fs, err := e.d.stats.Usage(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	u, source := e.d.volumeUsage(context.Background(), target, fs)
	if source != "quota" || u != fs {
		t.Errorf("volumeUsage = %+v from %q, want the statfs %+v from \"quota\"", u, source, fs)
	}
}

func usageOf(u *csi.VolumeUsage) (out nfs.Usage) {
	out.TotalBytes, out.AvailableBytes, out.UsedBytes = u.GetTotal(), u.GetAvailable(), u.GetUsed()
	return out
}
