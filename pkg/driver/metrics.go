package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	csimetrics "github.com/kubernetes-csi/csi-lib-utils/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

// MetricsPath is where the metrics endpoint serves.
const MetricsPath = "/metrics"

// The kinds of mount the mount-failure counter tells apart.
const (
	mountKindShare   = "share"   // the controller's share mount
	mountKindPublish = "publish" // a node's mount at a pod's target path
)

// Metrics is the driver's Prometheus instrumentation. Every value is set by
// the code path that changes it, never computed at scrape time, so a scrape
// touches neither NFS nor a lock that an NFS call can hold: a dead server
// cannot stall it.
type Metrics struct {
	// operations is csi-lib-utils' csi_plugin_operations_seconds histogram
	// (labels driver_name, method_name, grpc_status_code), the name every
	// CSI plugin's dashboards already use.
	operations csimetrics.CSIMetricsManager
	registry   *prometheus.Registry

	hung          *prometheus.GaugeVec
	hungTotal     *prometheus.CounterVec
	shareMounts   prometheus.Gauge
	mountFailures *prometheus.CounterVec
	publications  prometheus.Gauge
	volumes       *volumeBytes
}

func newMetrics(driverName string) *Metrics {
	m := &Metrics{
		// The process collector below serves process_start_time_seconds;
		// csi-lib-utils' own copy would clash with it.
		operations: csimetrics.NewCSIMetricsManagerWithOptions(driverName,
			csimetrics.WithSubsystem(csimetrics.SubsystemPlugin), csimetrics.WithProcessStartTime(false)),
		registry: prometheus.NewRegistry(),
		hung: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nfs_csi_hung_operations",
			Help: "Volume operations still running after their RPC returned DeadlineExceeded (an NFS call that does not return; the volume's lock stays held until it does).",
		}, []string{"method_name"}),
		hungTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfs_csi_hung_operations_total",
			Help: "Volume operations whose RPC returned DeadlineExceeded while they went on running.",
		}, []string{"method_name"}),
		shareMounts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nfs_csi_share_mounts",
			Help: "NFS share mounts the controller holds.",
		}),
		mountFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfs_csi_mount_failures_total",
			Help: "Failed NFS mounts by kind (share: the controller's share mount, publish: a node's mount for a pod) and failure class.",
		}, []string{"kind", "class"}),
		publications: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nfs_csi_node_publications",
			Help: "Target paths this node plugin has published (mounted for a pod) and not yet unpublished, since the plugin started.",
		}),
		volumes: newVolumeBytes(),
	}
	m.registry.MustRegister(m.hung, m.hungTotal, m.shareMounts, m.mountFailures, m.publications,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(m.volumes.collectors()...)
	// Every failure class is served from the start, at zero, so that rate()
	// and increase() see the first failure.
	for _, kind := range []string{mountKindShare, mountKindPublish} {
		for _, f := range nfs.MountFailures {
			m.mountFailures.WithLabelValues(kind, f.String())
		}
	}
	m.operations.WithAdditionalRegistry(m.registry)
	return m
}

// Handler serves the metrics at MetricsPath.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	m.operations.RegisterToServer(mux, MetricsPath)
	return mux
}

// serveMetrics serves the metrics on addr until the returned stop is called.
// An empty addr serves nothing.
func (d *Driver) serveMetrics(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %q: %w", addr, err)
	}
	return d.serveMetricsOn(lis), nil
}

// serveMetricsOn serves the metrics on lis until the returned stop is called.
func (d *Driver) serveMetricsOn(lis net.Listener) (stop func()) {
	srv := &http.Server{Handler: d.metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
	klog.InfoS("Serving metrics", "address", lis.Addr().String(), "path", MetricsPath)
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Metrics server stopped", "address", lis.Addr().String())
		}
	}()
	return func() { _ = srv.Close() }
}

// recordRPC is the outermost gRPC interceptor: it observes every call's
// duration and final code, including the Internal that logAndRecover makes
// of a panic.
func (m *Metrics) recordRPC(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.operations.RecordMetrics(info.FullMethod, err, time.Since(start))
	return resp, err
}

// trackedOp is one runLocked operation as the hung-operations gauge sees it:
// counted from the moment its RPC gave up on it until it ends.
type trackedOp struct {
	m      *Metrics
	method string

	mu                  sync.Mutex
	finished, abandoned bool
}

// track starts tracking an operation of the RPC that ctx belongs to.
func (m *Metrics) track(ctx context.Context) *trackedOp {
	method, _ := grpc.Method(ctx)
	return &trackedOp{m: m, method: method}
}

// finish is called when the operation ends.
func (o *trackedOp) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished = true
	if o.abandoned {
		o.m.hung.WithLabelValues(o.method).Dec()
	}
}

// abandon is called when the RPC returns without waiting for the operation.
func (o *trackedOp) abandon() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.finished || o.abandoned {
		return
	}
	o.abandoned = true
	o.m.hung.WithLabelValues(o.method).Inc()
	o.m.hungTotal.WithLabelValues(o.method).Inc()
}

// abandoned counts an operation of ctx's RPC that the RPC has returned
// without, as nfs.StatFS reports one; the returned func ends it.
func (m *Metrics) abandoned(ctx context.Context) (ended func()) {
	o := m.track(ctx)
	o.abandon()
	return o.finish
}

// observedMounter counts share mounts held and mount failures by class, as
// the mounts happen. A mount under sharesDir is a controller share mount;
// any other is a node publication.
type observedMounter struct {
	nfs.Mounter
	m         *Metrics
	sharesDir string

	mu     sync.Mutex
	shares map[string]bool // share mount points mounted through this mounter
}

func newObservedMounter(inner nfs.Mounter, m *Metrics, sharesDir string) *observedMounter {
	return &observedMounter{Mounter: inner, m: m, sharesDir: sharesDir, shares: map[string]bool{}}
}

func (o *observedMounter) isShare(target string) bool {
	return o.sharesDir != "" && strings.HasPrefix(filepath.Clean(target), o.sharesDir+string(filepath.Separator))
}

// Mount implements nfs.Mounter.
func (o *observedMounter) Mount(ctx context.Context, source, target string, options []string) error {
	err := o.Mounter.Mount(ctx, source, target, options)
	share := o.isShare(target)
	if err != nil {
		kind := mountKindPublish
		if share {
			kind = mountKindShare
		}
		class := nfs.MountFailedOther
		var me *nfs.MountError
		if errors.As(err, &me) {
			class = me.Failure()
		}
		o.m.mountFailures.WithLabelValues(kind, class.String()).Inc()
		return err
	}
	if share {
		o.mu.Lock()
		o.shares[filepath.Clean(target)] = true
		o.m.shareMounts.Set(float64(len(o.shares)))
		o.mu.Unlock()
	}
	return nil
}

// Unmount implements nfs.Mounter. A share mount that failed to unmount is
// still held.
func (o *observedMounter) Unmount(ctx context.Context, target string) error {
	err := o.Mounter.Unmount(ctx, target)
	if err == nil && o.isShare(target) {
		o.mu.Lock()
		delete(o.shares, filepath.Clean(target))
		o.m.shareMounts.Set(float64(len(o.shares)))
		o.mu.Unlock()
	}
	return err
}
