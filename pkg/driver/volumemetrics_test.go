package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

var volumeFamilies = []string{"nfs_csi_volume_used_bytes", "nfs_csi_volume_limit_bytes"}

// volumeSeries lists the per-volume series of volume id in a scrape, as
// `name{label=value,...} value`, sorted.
func volumeSeries(mfs map[string]*dto.MetricFamily, id string) []string {
	var out []string
	for _, name := range volumeFamilies {
		for _, m := range mfs[name].GetMetric() {
			l := labelsOf(m)
			if l["volume_id"] != id {
				continue
			}
			out = append(out, formatSeries(name, l, m.GetGauge().GetValue()))
		}
	}
	sort.Strings(out)
	return out
}

func formatSeries(name string, labels map[string]string, v float64) string {
	var ls []string
	for k, val := range labels {
		ls = append(ls, k+"="+val)
	}
	sort.Strings(ls)
	return fmt.Sprintf("%s{%s} %d", name, strings.Join(ls, ","), int64(v))
}

// statsUntil calls NodeGetVolumeStats over gRPC, as the kubelet does,
// until its usage source header is source, and returns its bytes usage.
func statsUntil(t *testing.T, node csi.NodeClient, id, target, source string) *csi.VolumeUsage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var md metadata.MD
		resp, err := node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target}, grpc.Header(&md))
		if err != nil {
			t.Fatal(err)
		}
		got := md.Get(UsageSourceHeader)
		if len(got) == 1 && got[0] == source {
			for _, u := range resp.GetUsage() {
				if u.GetUnit() == csi.VolumeUsage_BYTES {
					return u
				}
			}
			t.Fatalf("no BYTES usage in %v", resp)
		}
		if time.Now().After(deadline) {
			t.Fatalf("NodeGetVolumeStats %s at %s: usage source %v, want %q", id, target, got, source)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricsVolumeBytes checks the per-volume used and limit series that
// NodeGetVolumeStats sets: they carry exactly the figures the RPC
// returned (only the volume's own), and they go with the volume's last
// unpublished target.
func TestMetricsVolumeBytes(t *testing.T) {
	type want struct {
		used  bool   // the used series is served, at the RPC's used bytes
		kind  string // the capacity label of the limit series; "" for none
		limit func(u *csi.VolumeUsage) int64
	}
	recordedSize := func(*csi.VolumeUsage) int64 { return gib }
	rpcTotal := func(u *csi.VolumeUsage) int64 { return u.GetTotal() }
	tests := []struct {
		name    string
		context map[string]string // set in the created volume's context; an empty value deletes the key
		targets int               // published at this many targets, unpublished one by one
		source  string            // NodeGetVolumeStats is called until its usage source is this
		want    want
	}{
		{
			name: "recorded, before the first walk ends", targets: 1, source: "share",
			want: want{used: false, kind: CapacityRecorded, limit: recordedSize},
		},
		{
			name: "recorded, walked", targets: 1, source: "walk",
			want: want{used: true, kind: CapacityRecorded, limit: recordedSize},
		},
		{
			name: "enforced", context: map[string]string{ContextCapacity: CapacityEnforced}, targets: 1, source: "quota",
			want: want{used: true, kind: CapacityEnforced, limit: rpcTotal},
		},
		{
			name: "a static PV without a recorded size, walked", context: map[string]string{ContextCapacityBytes: ""}, targets: 1, source: "walk",
			want: want{used: true},
		},
		{
			name: "one volume at two targets", targets: 2, source: "walk",
			want: want{used: true, kind: CapacityRecorded, limit: recordedSize},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			node := csi.NewNodeClient(serve(t, e.d))
			url := metricsServer(t, e.d)
			v := e.create(t, "pvc-1", baseParams())
			e.writeExport(t, "pvc-1/data", string(make([]byte, 100_000)))
			for k, val := range tc.context {
				if val == "" {
					delete(v.VolumeContext, k)
				} else {
					v.VolumeContext[k] = val
				}
			}
			id := v.GetVolumeId()
			var targets []string
			for i := range tc.targets {
				target := filepath.Join(t.TempDir(), fmt.Sprintf("t%d", i))
				if _, err := node.NodePublishVolume(context.Background(), publishReq(v, target, mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER))); err != nil {
					t.Fatal(err)
				}
				targets = append(targets, target)
			}
			if got := volumeSeries(scrape(t, url), id); len(got) != 0 {
				t.Errorf("series before any NodeGetVolumeStats: %v; want none", got)
			}
			var u *csi.VolumeUsage
			for _, target := range targets {
				u = statsUntil(t, node, id, target, tc.source)
			}

			var wantSeries []string
			if tc.want.used {
				wantSeries = append(wantSeries, formatSeries("nfs_csi_volume_used_bytes", map[string]string{"volume_id": id}, float64(u.GetUsed())))
			}
			if tc.want.kind != "" {
				wantSeries = append(wantSeries, formatSeries("nfs_csi_volume_limit_bytes", map[string]string{"volume_id": id, "capacity": tc.want.kind}, float64(tc.want.limit(u))))
			}
			sort.Strings(wantSeries)
			if got := volumeSeries(scrape(t, url), id); strings.Join(got, "\n") != strings.Join(wantSeries, "\n") {
				t.Errorf("after NodeGetVolumeStats (usage %v):\n%s\nwant\n%s", u, strings.Join(got, "\n"), strings.Join(wantSeries, "\n"))
			}
			if tc.want.used && u.GetUsed() < 100_000 {
				t.Errorf("NodeGetVolumeStats used %d bytes; want at least the 100 kB written", u.GetUsed())
			}

			for i, target := range targets {
				if _, err := node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
					t.Fatal(err)
				}
				got := volumeSeries(scrape(t, url), id)
				if last := i == len(targets)-1; last && len(got) != 0 {
					t.Errorf("after the last unpublish: %v; want no series of the volume", got)
				} else if !last && len(got) != len(wantSeries) {
					t.Errorf("after unpublishing %d of %d targets: %v; want the series to stay", i+1, len(targets), got)
				}
			}
		})
	}
}

// TestMetricsVolumeBytesGoWithAnUnmountedTarget: a target unmounted behind
// the driver's back (the kubelet cleaned up after a node plugin restart)
// loses its series at the next NodeGetVolumeStats, which answers NotFound.
func TestMetricsVolumeBytesGoWithAnUnmountedTarget(t *testing.T) {
	e := newEnv(t)
	node := csi.NewNodeClient(serve(t, e.d))
	url := metricsServer(t, e.d)
	v := e.create(t, "pvc-1", baseParams())
	target := filepath.Join(t.TempDir(), "t")
	if _, err := node.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	statsUntil(t, node, v.GetVolumeId(), target, "walk")
	if got := volumeSeries(scrape(t, url), v.GetVolumeId()); len(got) != 2 {
		t.Fatalf("series after NodeGetVolumeStats: %v; want used and limit", got)
	}
	if err := e.fake.Unmount(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	_, err := node.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: target})
	wantCode(t, err, codes.NotFound)
	if got := volumeSeries(scrape(t, url), v.GetVolumeId()); len(got) != 0 {
		t.Errorf("series after NodeGetVolumeStats found the target unmounted: %v; want none", got)
	}
}

// TestVolumeBytesSeries drives volumeBytes directly through the orders of
// events that the RPCs cannot reproduce at will.
func TestVolumeBytesSeries(t *testing.T) {
	recorded := volumeFigures{used: 5, haveUsed: true, limit: 10, limitKind: CapacityRecorded}
	enforced := volumeFigures{used: 6, haveUsed: true, limit: 20, limitKind: CapacityEnforced}
	type op struct {
		forget  bool
		id      string
		target  string
		f       volumeFigures
		mounted bool
	}
	set := func(id, target string, f volumeFigures) op { return op{id: id, target: target, f: f, mounted: true} }
	forget := func(id, target string) op { return op{forget: true, id: id, target: target} }
	tests := []struct {
		name string
		ops  []op
		want []string
	}{
		{
			name: "a stats call that ends after the unpublish does not bring the series back",
			ops:  []op{set("a", "/t1", recorded), forget("a", "/t1"), {id: "a", target: "/t1", f: recorded, mounted: false}},
			want: nil,
		},
		{
			name: "a limit whose kind changes keeps one series",
			ops:  []op{set("a", "/t1", recorded), set("a", "/t1", enforced)},
			want: []string{"nfs_csi_volume_limit_bytes{capacity=enforced,volume_id=a} 20", "nfs_csi_volume_used_bytes{volume_id=a} 6"},
		},
		{
			name: "figures without usage or limit leave the last ones",
			ops:  []op{set("a", "/t1", recorded), set("a", "/t1", volumeFigures{})},
			want: []string{"nfs_csi_volume_limit_bytes{capacity=recorded,volume_id=a} 10", "nfs_csi_volume_used_bytes{volume_id=a} 5"},
		},
		{
			name: "volumes are apart; forgetting an unknown target changes nothing",
			ops:  []op{set("a", "/t1", recorded), set("b", "/t2", enforced), forget("a", "/t9"), forget("c", "/t1"), forget("b", "/t2")},
			want: []string{"nfs_csi_volume_limit_bytes{capacity=recorded,volume_id=a} 10", "nfs_csi_volume_used_bytes{volume_id=a} 5"},
		},
		{
			name: "a target spelt with a trailing slash is the same target",
			ops:  []op{set("a", "/t1", recorded), forget("a", "/t1/")},
			want: nil,
		},
		{
			name: "the series go with the last of two targets",
			ops:  []op{set("a", "/t1", recorded), set("a", "/t2", recorded), forget("a", "/t1"), forget("a", "/t2")},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVolumeBytes()
			reg := prometheus.NewRegistry()
			reg.MustRegister(v.collectors()...)
			for _, o := range tc.ops {
				if o.forget {
					v.forget(o.id, o.target)
				} else {
					v.observe(o.id, o.target, o.f, func() bool { return o.mounted })
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					got = append(got, formatSeries(mf.GetName(), labelsOf(m), m.GetGauge().GetValue()))
				}
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("series:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(tc.want) == 0 && (len(v.targets) != 0 || len(v.limitKind) != 0) {
				t.Errorf("volumeBytes still tracks %v, %v after every series went", v.targets, v.limitKind)
			}
		})
	}
}
