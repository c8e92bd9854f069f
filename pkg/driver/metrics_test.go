package driver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
)

// scrape reads the metrics endpoint over HTTP, as Prometheus does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(url + MetricsPath)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v", url, err)
	}
	return mfs
}

// metricsServer serves d's metrics endpoint on an httptest server.
func metricsServer(t *testing.T, d *Driver) string {
	t.Helper()
	srv := httptest.NewServer(d.metrics.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value is the value of the series of family name whose labels include want;
// 0 if there is none. Counters, gauges and histograms (their count) alike.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		got := labelsOf(m)
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// rpcCounts maps "method code" to the number of calls csi_plugin_operations_seconds counted.
func rpcCounts(t *testing.T, mfs map[string]*dto.MetricFamily) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range mfs["csi_plugin_operations_seconds"].GetMetric() {
		l := labelsOf(m)
		if l["driver_name"] != DefaultDriverName {
			t.Errorf("csi_plugin_operations_seconds has driver_name %q, want %q", l["driver_name"], DefaultDriverName)
		}
		out[l["method_name"]+" "+l["grpc_status_code"]] = m.GetHistogram().GetSampleCount()
	}
	return out
}

func formatCounts(c map[string]uint64) string {
	var s []string
	for k, v := range c {
		if v != 0 {
			s = append(s, k+"="+strings.Repeat("I", int(v)))
		}
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

func TestMetricsCountCalls(t *testing.T) {
	const (
		create    = "/csi.v1.Controller/CreateVolume"
		del       = "/csi.v1.Controller/DeleteVolume"
		publish   = "/csi.v1.Node/NodePublishVolume"
		unpublish = "/csi.v1.Node/NodeUnpublishVolume"
	)
	type series struct {
		name   string
		labels map[string]string
		want   float64 // a counter's increase or a gauge's value
	}
	failures := func(kind, class string, n float64) series {
		return series{"nfs_csi_mount_failures_total", map[string]string{"kind": kind, "class": class}, n}
	}
	shares := func(n float64) series { return series{"nfs_csi_share_mounts", nil, n} }
	pubs := func(n float64) series { return series{"nfs_csi_node_publications", nil, n} }

	tests := []struct {
		name     string
		calls    func(t *testing.T, e *env, ctrl csi.ControllerClient, node csi.NodeClient)
		wantRPCs map[string]uint64 // "method code" -> calls
		want     []series
	}{
		{
			name: "create twice (idempotent) and delete",
			calls: func(t *testing.T, e *env, ctrl csi.ControllerClient, _ csi.NodeClient) {
				ctx := context.Background()
				for range 2 {
					if _, err := ctrl.CreateVolume(ctx, createReq("pvc-1", baseParams())); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: volumeIDFor("pvc-1", "delete")}); err != nil {
					t.Fatal(err)
				}
			},
			wantRPCs: map[string]uint64{create + " OK": 2, del + " OK": 1},
			want:     []series{shares(1), pubs(0), failures("share", "access_denied", 0), failures("publish", "access_denied", 0)},
		},
		{
			name: "invalid requests",
			calls: func(t *testing.T, e *env, ctrl csi.ControllerClient, node csi.NodeClient) {
				_, err := ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{})
				wantCode(t, err, codes.InvalidArgument)
				_, err = node.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{})
				wantCode(t, err, codes.InvalidArgument)
			},
			wantRPCs: map[string]uint64{create + " InvalidArgument": 1, publish + " InvalidArgument": 1},
			want:     []series{shares(0), pubs(0)},
		},
		{
			name: "share mount refused by the server",
			calls: func(t *testing.T, e *env, ctrl csi.ControllerClient, _ csi.NodeClient) {
				_, err := ctrl.CreateVolume(context.Background(), createReq("pvc-1", withParams(map[string]string{"server": "10.0.0.2"})))
				wantCode(t, err, codes.PermissionDenied)
			},
			wantRPCs: map[string]uint64{create + " PermissionDenied": 1},
			want:     []series{shares(0), failures("share", "access_denied", 1), failures("publish", "access_denied", 0)},
		},
		{
			name: "publish twice, a second target, unpublish one",
			calls: func(t *testing.T, e *env, ctrl csi.ControllerClient, node csi.NodeClient) {
				ctx := context.Background()
				v, err := ctrl.CreateVolume(ctx, createReq("pvc-1", baseParams()))
				if err != nil {
					t.Fatal(err)
				}
				cap := mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
				targets := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
				for _, target := range []string{targets[0], targets[0], targets[1]} {
					if _, err := node.NodePublishVolume(ctx, publishReq(v.GetVolume(), target, cap)); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolume().GetVolumeId(), TargetPath: targets[0]}); err != nil {
					t.Fatal(err)
				}
			},
			wantRPCs: map[string]uint64{create + " OK": 1, publish + " OK": 3, unpublish + " OK": 1},
			want:     []series{shares(1), pubs(1)},
		},
		{
			name: "publish of a directory missing on the server",
			calls: func(t *testing.T, e *env, _ csi.ControllerClient, node csi.NodeClient) {
				v := &csi.Volume{VolumeId: "static-pv-1", VolumeContext: map[string]string{"server": testServer, "share": testShare, "subDir": "gone"}}
				_, err := node.NodePublishVolume(context.Background(), publishReq(v, filepath.Join(t.TempDir(), "t"), rwo()))
				wantCode(t, err, codes.NotFound)
			},
			wantRPCs: map[string]uint64{publish + " NotFound": 1},
			want:     []series{pubs(0), failures("publish", "no_such_export", 1), failures("share", "no_such_export", 0)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			conn := serve(t, e.d)
			url := metricsServer(t, e.d)
			before := scrape(t, url)
			tc.calls(t, e, csi.NewControllerClient(conn), csi.NewNodeClient(conn))
			after := scrape(t, url)

			got := rpcCounts(t, after)
			for k, v := range rpcCounts(t, before) {
				got[k] -= v
			}
			if formatCounts(got) != formatCounts(tc.wantRPCs) {
				t.Errorf("calls counted by csi_plugin_operations_seconds: %s; want %s", formatCounts(got), formatCounts(tc.wantRPCs))
			}
			for _, s := range tc.want {
				v := value(after, s.name, s.labels)
				if mf := after[s.name]; mf.GetType() == dto.MetricType_COUNTER {
					v -= value(before, s.name, s.labels)
				}
				if v != s.want {
					t.Errorf("%s%v = %v; want %v", s.name, s.labels, v, s.want)
				}
			}
		})
	}
}

// TestMetricsShareMountsFollowTheReaper checks that the share-mount gauge
// falls when the idle share is unmounted.
func TestMetricsShareMountsFollowTheReaper(t *testing.T) {
	e := newEnv(t)
	url := metricsServer(t, e.d)
	e.create(t, "pvc-1", baseParams())
	if got := value(scrape(t, url), "nfs_csi_share_mounts", nil); got != 1 {
		t.Errorf("nfs_csi_share_mounts after CreateVolume = %v; want 1", got)
	}
	e.close() // unmounts the idle share
	if got := value(scrape(t, url), "nfs_csi_share_mounts", nil); got != 0 {
		t.Errorf("nfs_csi_share_mounts after the share was unmounted = %v; want 0", got)
	}
}

// stuckMounter's Mount blocks until release is closed and ignores ctx, as a
// mount on a dead hard-mounted server does.
type stuckMounter struct {
	*nfs.FakeMounter
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckMounter) Mount(ctx context.Context, source, target string, options []string) error {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return s.FakeMounter.Mount(context.Background(), source, target, options)
}

// TestMetricsScrapeWhileNFSHangs proves that a scrape answers while an NFS
// call is stuck, and that the stuck call shows as a hung operation of its
// method once its RPC has returned, until it ends.
func TestMetricsScrapeWhileNFSHangs(t *testing.T) {
	e := newEnv(t)
	stuck := &stuckMounter{FakeMounter: e.fake, entered: make(chan struct{}), release: make(chan struct{})}
	d, err := New(Config{
		Mode: ModeNode, NodeID: testNode, Mounter: stuck, MountHelper: e.helper,
		OperationTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(stuck.release)
		}
	}
	t.Cleanup(release)
	conn := serve(t, d)
	url := metricsServer(t, d)
	hung := map[string]string{"method_name": "/csi.v1.Node/NodePublishVolume"}

	v := &csi.Volume{VolumeId: "static-pv-1", VolumeContext: map[string]string{"server": testServer, "share": testShare}}
	errc := make(chan error, 1)
	go func() {
		_, err := csi.NewNodeClient(conn).NodePublishVolume(context.Background(), publishReq(v, filepath.Join(t.TempDir(), "t"), rwo()), grpc.WaitForReady(true))
		errc <- err
	}()
	<-stuck.entered
	// The mount is stuck now; a scrape still answers.
	during := scrape(t, url)
	if got := value(during, "nfs_csi_node_publications", nil); got != 0 {
		t.Errorf("nfs_csi_node_publications while the mount is stuck = %v; want 0", got)
	}

	wantCode(t, <-errc, codes.DeadlineExceeded)
	after := scrape(t, url)
	if got := value(after, "nfs_csi_hung_operations", hung); got != 1 {
		t.Errorf("nfs_csi_hung_operations%v after the RPC returned = %v; want 1", hung, got)
	}
	if got := value(after, "nfs_csi_hung_operations_total", hung); got != 1 {
		t.Errorf("nfs_csi_hung_operations_total%v = %v; want 1", hung, got)
	}
	if got := rpcCounts(t, after)["/csi.v1.Node/NodePublishVolume DeadlineExceeded"]; got != 1 {
		t.Errorf("NodePublishVolume DeadlineExceeded counted %d times; want 1", got)
	}

	release()
	// The operation ends in the background; the gauge falls back to 0.
	deadline := time.Now().Add(time.Minute)
	for value(scrape(t, url), "nfs_csi_hung_operations", hung) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("nfs_csi_hung_operations stayed above 0 after the stuck mount returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := value(scrape(t, url), "nfs_csi_hung_operations_total", hung); got != 1 {
		t.Errorf("nfs_csi_hung_operations_total%v after the operation ended = %v; want 1 (it counts, it does not fall)", hung, got)
	}
}

// TestServeMetrics checks the listener Run starts for --metrics-address.
func TestServeMetrics(t *testing.T) {
	e := newEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	stop := e.d.serveMetricsOn(lis)
	if _, ok := scrape(t, "http://"+addr)["csi_plugin_operations_seconds"]; ok {
		t.Error("csi_plugin_operations_seconds has series before any call")
	}
	if got := value(scrape(t, "http://"+addr), "nfs_csi_mount_failures_total", map[string]string{"kind": "share", "class": "timed_out"}); got != 0 {
		t.Errorf("nfs_csi_mount_failures_total{share,timed_out} = %v before any mount; want 0", got)
	}
	if _, ok := scrape(t, "http://"+addr)["nfs_csi_mount_failures_total"]; !ok {
		t.Error("nfs_csi_mount_failures_total is not served before the first failure")
	}
	stop()
	if _, err := e.d.serveMetrics("256.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "--metrics-address") {
		t.Errorf("serveMetrics on a bad address: %v; want an error naming --metrics-address", err)
	}
	for _, addr := range []string{"127.0.0.1:0", ""} {
		stop, err := e.d.serveMetrics(addr)
		if err != nil {
			t.Fatalf("serveMetrics(%q): %v", addr, err)
		}
		stop()
	}
}
