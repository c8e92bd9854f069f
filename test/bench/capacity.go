package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/test/umlbed"
)

// capacityResult is the rows of issue 11 (enforced capacity), on an XFS
// export with prjquota over NFSv4.2, the agent serving it on loopback with
// mTLS.
type capacityResult struct {
	Export     string `json:"export"`
	NFSVersion string `json:"nfsVersion"`
	Cycles     int    `json:"cycles"`
	// Sequential CreateVolume+DeleteVolume over gRPC, with capacity:
	// enforced (the agent sets and clears a project quota) and without.
	CreateDeleteEnforcedPerSec float64 `json:"createDeleteEnforcedPerSec"`
	CreateDeletePlainPerSec    float64 `json:"createDeletePlainPerSec"`
	EnforcementSlowdown        float64 `json:"createDeleteEnforcementSlowdown"`
	ExpandEnforcedP50Ms        float64 `json:"controllerExpandEnforcedP50Ms"`
	ExpandPlainP50Ms           float64 `json:"controllerExpandPlainP50Ms"`
	// NodeGetVolumeStats on one volume of StatsFiles empty files, published
	// twice: as enforced (figures from the statfs of the mount, which the
	// quota makes the volume's) and without the enforcement key in its
	// volume context (figures from the node's cached walk).
	StatsFiles      int     `json:"statsFiles"`
	StatsQuotaP50Ms float64 `json:"statsQuotaP50Ms"`
	StatsQuotaP99Ms float64 `json:"statsQuotaP99Ms"`
	StatsQuotaSrc   string  `json:"statsQuotaSource"`
	// StatsFirstCallMs is the call that starts the walk; StatsWhileWalkMaxMs
	// the slowest call made while it ran; WalkSeconds the time from the
	// first call until a call answered from the walk.
	StatsFirstCallMs    float64 `json:"statsWalkFirstCallMs"`
	StatsWhileWalkMaxMs float64 `json:"statsWhileWalkingMaxMs"`
	WalkSeconds         float64 `json:"walkSeconds"`
	StatsWalkP50Ms      float64 `json:"statsWalkP50Ms"`
	StatsWalkP99Ms      float64 `json:"statsWalkP99Ms"`
	StatsWalkSrc        string  `json:"statsWalkSource"`
	StatsWalkUsedInodes int64   `json:"statsWalkUsedInodes"`
	BareStatfsP50Ms     float64 `json:"bareStatfsP50Ms"`
	BareStatfsP99Ms     float64 `json:"bareStatfsP99Ms"`
	BareDuSeconds       float64 `json:"bareDuSeconds"`
	QuotaStatsVsStatfs  float64 `json:"statsQuotaP50SlowdownVsStatfs"`
	WalkStatsVsStatfs   float64 `json:"statsWalkP50SlowdownVsStatfs"`
}

// capacityRows measures issue 11's rows on the quota export x with the
// agent a: create+delete with enforcement on and off, ControllerExpandVolume,
// and NodeGetVolumeStats on a volume of statsFiles files.
func capacityRows(p *driverProc, x *umlbed.Export, a *umlbed.Agent, work string, cycles, statsFiles int) capacityResult {
	const vers = "4.2"
	r := capacityResult{Export: x.Kind, NFSVersion: vers, Cycles: cycles, StatsFiles: statsFiles}
	ctrl, node := csi.NewControllerClient(p.conn), csi.NewNodeClient(p.conn)
	ctx := context.Background()
	secrets, err := a.Secrets()
	check(err, "the agent's client certificate")
	plain := map[string]string{"server": os.Getenv("NFS_SERVER"), "share": x.V4Share, "mountOptions": "vers=" + vers}
	enforced := maps.Clone(plain)
	enforced[driver.ParamCapacity], enforced[driver.ParamQuotaAgent] = driver.CapacityEnforced, a.Addr
	sized := func(name string, size int64, params map[string]string) *csi.CreateVolumeRequest {
		return &csi.CreateVolumeRequest{Name: name, Parameters: params, Secrets: secrets,
			CapacityRange: &csi.CapacityRange{RequiredBytes: size}, VolumeCapabilities: []*csi.VolumeCapability{capability}}
	}

	perSec := func(kind string, params map[string]string) float64 {
		cycle := func(name string) {
			resp, err := ctrl.CreateVolume(ctx, sized(name, 64<<20, params))
			check(err, "CreateVolume "+name)
			_, err = ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: secrets})
			check(err, "DeleteVolume "+name)
		}
		cycle("bench-cap-warmup-" + kind) // the share's first mount, the agent's first connection
		start := time.Now()
		for i := range cycles {
			cycle(fmt.Sprintf("bench-cap-%s-%d", kind, i))
		}
		return float64(cycles) / time.Since(start).Seconds()
	}
	r.CreateDeletePlainPerSec = perSec("plain", plain)
	r.CreateDeleteEnforcedPerSec = perSec("enforced", enforced)
	r.EnforcementSlowdown = ratio(r.CreateDeletePlainPerSec, r.CreateDeleteEnforcedPerSec)

	expandP50 := func(kind string, params map[string]string) float64 {
		v := createVolume(ctx, ctrl, sized("bench-expand-"+kind, 64<<20, params))
		var d []time.Duration
		for i := range 50 {
			t0 := time.Now()
			_, err := ctrl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.GetVolumeId(), Secrets: secrets,
				CapacityRange: &csi.CapacityRange{RequiredBytes: int64(65+i) << 20}, VolumeCapability: capability})
			check(err, "ControllerExpandVolume "+v.GetVolumeId())
			d = append(d, time.Since(t0))
		}
		deleteVolume(ctx, ctrl, v.GetVolumeId(), secrets)
		return ms(pct(d, 50))
	}
	r.ExpandPlainP50Ms = expandP50("plain", plain)
	r.ExpandEnforcedP50Ms = expandP50("enforced", enforced)

	vol := createVolume(ctx, ctrl, sized("bench-stats", 256<<20, enforced)) // empty files take no blocks
	subDir := vol.GetVolumeContext()["subDir"]
	if subDir == "" {
		fail("the stats volume " + vol.GetVolumeId() + " has no subDir in its volume context")
	}
	t0 := time.Now()
	check(writeEmptyTree(filepath.Join(x.Dir, subDir), statsFiles), "write the stats tree of "+vol.GetVolumeId())
	fmt.Fprintf(os.Stderr, "bench: %d files written on the server in %.1f s\n", statsFiles, time.Since(t0).Seconds())
	walked := maps.Clone(vol.GetVolumeContext())
	delete(walked, driver.ContextCapacity)
	quotaTarget, walkTarget := filepath.Join(work, "pods", "stats-quota"), filepath.Join(work, "pods", "stats-walk")
	for target, vc := range map[string]map[string]string{quotaTarget: vol.GetVolumeContext(), walkTarget: walked} {
		_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target, VolumeCapability: capability, VolumeContext: vc})
		check(err, "NodePublishVolume "+target)
	}
	stats := func(target string) (time.Duration, string, *csi.NodeGetVolumeStatsResponse) {
		var md metadata.MD
		t0 := time.Now()
		resp, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target}, grpc.Header(&md))
		d := time.Since(t0)
		check(err, "NodeGetVolumeStats "+target)
		return d, strings.Join(md.Get(driver.UsageSourceHeader), ","), resp
	}
	timed := func(n int, f func() time.Duration) (p50, p99 float64) {
		var d []time.Duration
		for range n {
			d = append(d, f())
		}
		return ms(pct(d, 50)), ms(pct(d, 99))
	}

	r.BareStatfsP50Ms, r.BareStatfsP99Ms = timed(200, func() time.Duration {
		var st unix.Statfs_t
		t0 := time.Now()
		check(unix.Statfs(quotaTarget, &st), "statfs "+quotaTarget)
		return time.Since(t0)
	})
	r.StatsQuotaP50Ms, r.StatsQuotaP99Ms = timed(200, func() time.Duration {
		d, src, _ := stats(quotaTarget)
		r.StatsQuotaSrc = src
		return d
	})

	dropCaches()
	walkStart := time.Now()
	first, src, _ := stats(walkTarget)
	r.StatsFirstCallMs, r.StatsWhileWalkMaxMs = ms(first), ms(first)
	deadline := time.Now().Add(10 * time.Minute)
	for !strings.HasPrefix(src, "walk") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		var d time.Duration
		d, src, _ = stats(walkTarget)
		r.StatsWhileWalkMaxMs = max(r.StatsWhileWalkMaxMs, ms(d))
	}
	r.WalkSeconds = -1 // the walk did not end in 10 minutes
	if strings.HasPrefix(src, "walk") {
		r.WalkSeconds = time.Since(walkStart).Seconds()
	}
	r.StatsWalkP50Ms, r.StatsWalkP99Ms = timed(200, func() time.Duration {
		d, src, resp := stats(walkTarget)
		r.StatsWalkSrc = src
		for _, u := range resp.GetUsage() {
			if u.GetUnit() == csi.VolumeUsage_INODES {
				r.StatsWalkUsedInodes = u.GetUsed()
			}
		}
		return d
	})

	dropCaches()
	t0 = time.Now()
	out, err := exec.Command("du", "-s", walkTarget).CombinedOutput()
	check(err, "du -s "+walkTarget+": "+firstLine(out))
	r.BareDuSeconds = time.Since(t0).Seconds()

	for _, target := range []string{quotaTarget, walkTarget} {
		_, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target})
		check(err, "NodeUnpublishVolume "+target)
	}
	// The tree goes on the server's side first: DeleteVolume would remove
	// its files one NFS round trip each, minutes under UML.
	t0 = time.Now()
	for i := 0; i < statsFiles; i += filesPerDir {
		check(os.RemoveAll(filepath.Dir(treePath(filepath.Join(x.Dir, subDir), i))), "remove the stats tree")
	}
	fmt.Fprintf(os.Stderr, "bench: the stats tree removed on the server in %.1f s\n", time.Since(t0).Seconds())
	deleteVolume(ctx, ctrl, vol.GetVolumeId(), secrets)
	r.QuotaStatsVsStatfs = ratio(r.StatsQuotaP50Ms, r.BareStatfsP50Ms)
	r.WalkStatsVsStatfs = ratio(r.StatsWalkP50Ms, r.BareStatfsP50Ms)
	return r
}

// statfsBytes is the total and free bytes of the file system of dir.
func statfsBytes(dir string) (total, free int64) {
	var st unix.Statfs_t
	check(unix.Statfs(dir, &st), "statfs "+dir)
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize
}
