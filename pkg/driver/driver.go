// Package driver implements the CSI Identity, Controller and Node services of
// nfs-csi and the validation of their requests. Everything that touches NFS
// lives in package nfs.
package driver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/nfs"
)

// Defaults of the command-line flags.
const (
	DefaultDriverName       = "nfs.csi.example.io"
	DefaultShareIdleTimeout = 5 * time.Minute
	DefaultOperationTimeout = 30 * time.Second
)

// The services a process can serve besides Identity.
const (
	ModeController = "controller"
	ModeNode       = "node"
	ModeBoth       = "both"
)

// Config is the driver's configuration, filled from flags.
type Config struct {
	Endpoint         string
	NodeID           string
	DriverName       string
	Mode             string
	WorkDir          string
	ShareIdleTimeout time.Duration
	OperationTimeout time.Duration
	// ClusterID identifies the Kubernetes cluster the controller serves. It
	// is written into every creation record, and DeleteVolume refuses a
	// volume whose record names another cluster (a PV copied from there).
	// ClusterIDAuto makes the controller read it from the API.
	ClusterID string
	// ShareMountOptions is the JSON of --share-mount-options: per server and
	// share, the options of the controller's own share mounts, in place of
	// the ones the volume IDs carry (nfs.ParseShareOptions).
	ShareMountOptions string
	// Kubeconfig is the controller's Kubernetes API access; empty means the
	// pod's in-cluster configuration, when there is one.
	Kubeconfig string
	// KubeClient replaces the client built from Kubeconfig; unit tests set it.
	KubeClient KubeAPI
	// MetricsAddress is the host:port the Prometheus metrics are served on;
	// empty serves none.
	MetricsAddress string

	// Mounter replaces the system mounter; unit tests set it.
	Mounter nfs.Mounter
	// MountHelper is the path Probe checks for; empty means look up mount.nfs.
	MountHelper string
}

// Driver holds the services' shared state.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg     Config
	mounter nfs.Mounter
	shares  *nfs.ShareMounts
	stats   *nfs.StatFS
	locks   *KeyedLocks
	nodes   NodeRegistry
	pubs    *publications
	metrics *Metrics
	// copies are the snapshot, restore and clone copies running;
	// snapShares the shares ListSnapshots looks at.
	copies     *copyJobs
	snapShares knownShares
	quotas     quotaAgents
	walker     *nfs.UsageWalker
	sizes      *publishedSizes
}

// New validates cfg and builds a driver. It mounts nothing yet.
func New(cfg Config) (*Driver, error) {
	if cfg.DriverName == "" {
		cfg.DriverName = DefaultDriverName
	}
	if cfg.OperationTimeout <= 0 {
		cfg.OperationTimeout = DefaultOperationTimeout
	}
	if cfg.ShareIdleTimeout <= 0 {
		cfg.ShareIdleTimeout = DefaultShareIdleTimeout
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeBoth
	case ModeController, ModeNode, ModeBoth:
	default:
		return nil, fmt.Errorf("--mode=%q: want controller, node or both", cfg.Mode)
	}
	if cfg.runsNode() && cfg.NodeID == "" {
		return nil, fmt.Errorf("--nodeid is required when the node service runs (--mode=%s)", cfg.Mode)
	}
	if len(cfg.NodeID) > 256 {
		return nil, fmt.Errorf("--nodeid is %d bytes; CSI allows at most 256", len(cfg.NodeID))
	}
	var kube KubeAPI
	if cfg.runsController() {
		var err error
		if kube, err = controllerKubeClient(cfg); err != nil {
			return nil, err
		}
		if cfg.ClusterID == ClusterIDAuto {
			cfg.ClusterID = autoClusterID(kube)
		}
	}
	if err := validateClusterID(cfg.ClusterID); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, mounter: cfg.Mounter, stats: nfs.NewStatFS(), locks: NewKeyedLocks(), metrics: newMetrics(cfg.DriverName), copies: newCopyJobs()}
	d.pubs = newPublications(d.metrics.publications)
	d.walker, d.sizes = nfs.NewUsageWalker(), &publishedSizes{m: map[string]sizeInfo{}}
	d.stats.OnAbandon = d.metrics.abandoned
	if d.mounter == nil {
		d.mounter = &nfs.SystemMounter{}
	}
	var sharesDir string
	if cfg.runsController() && cfg.WorkDir != "" {
		sharesDir = filepath.Join(cfg.WorkDir, "shares")
	}
	d.mounter = newObservedMounter(d.mounter, d.metrics, sharesDir)
	if cfg.runsController() {
		if cfg.WorkDir == "" {
			return nil, fmt.Errorf("--workdir is required when the controller service runs")
		}
		configured, err := nfs.ParseShareOptions(cfg.ShareMountOptions)
		if err != nil {
			return nil, fmt.Errorf("--share-mount-options: %w", err)
		}
		shares, err := nfs.NewShareMounts(d.mounter, sharesDir, cfg.ShareIdleTimeout)
		if err != nil {
			return nil, err
		}
		shares.UseShareOptions(configured)
		d.shares = shares
	}
	// A controller that shares its process with the node service knows the
	// only node there is; a controller on its own asks Kubernetes for the
	// node's CSINode, or without API access relies on the CO, which only
	// ever sends node IDs that a node plugin reported.
	switch {
	case cfg.runsNode():
		d.nodes = localNode(cfg.NodeID)
	case kube != nil:
		d.nodes = csiNodes{client: kube, driver: cfg.DriverName}
	default:
		d.nodes = anyNode{}
	}
	return d, nil
}

// controllerKubeClient is the controller's Kubernetes client: cfg.KubeClient,
// or one built from --kubeconfig or the pod's in-cluster configuration. nil
// when there is no API (csi-sanity, a controller outside Kubernetes). A
// --kubeconfig that does not work is an error; a broken in-cluster
// configuration is only logged, and the controller runs without the API.
func controllerKubeClient(cfg Config) (KubeAPI, error) {
	if cfg.KubeClient != nil {
		return cfg.KubeClient, nil
	}
	kube, err := newKubeClient(cfg.Kubeconfig)
	if err != nil && cfg.Kubeconfig != "" {
		return nil, err
	}
	if err != nil {
		klog.ErrorS(err, "The controller runs without Kubernetes API access")
	}
	return kube, nil
}

// autoClusterID resolves --cluster-id=auto. When it cannot, the controller
// runs without a cluster ID, and says so now and in every refusal it gives
// (nfs.DescribeClusterID).
func autoClusterID(kube KubeAPI) string {
	id, err := findClusterID(context.Background(), kube, clusterIDWait)
	if err != nil {
		klog.ErrorS(err, "--cluster-id=auto found no cluster ID: the controller runs WITHOUT one. "+
			"New volumes get records without a cluster ID (a PV copied into another cluster could delete them), "+
			"and volumes whose record names a cluster cannot be deleted. "+
			"Grant the controller's ServiceAccount get on the Namespace kube-system, or set --cluster-id (the chart's clusterID) to the kube-system Namespace's UID")
		return ""
	}
	klog.InfoS("Found the cluster ID", "clusterID", id, "from", "the UID of the Namespace "+clusterIDNamespace)
	return id
}

// MaxClusterIDLen bounds --cluster-id, which every creation record carries.
const MaxClusterIDLen = 256

func validateClusterID(id string) error {
	if len(id) > MaxClusterIDLen {
		return fmt.Errorf("--cluster-id is %d bytes; at most %d are allowed", len(id), MaxClusterIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("--cluster-id %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("--cluster-id %q contains white space or a control character", id)
		}
	}
	return nil
}

func (c Config) runsController() bool { return c.Mode == ModeController || c.Mode == ModeBoth }
func (c Config) runsNode() bool       { return c.Mode == ModeNode || c.Mode == ModeBoth }

// Close unmounts the controller's idle share mounts.
func (d *Driver) Close() {
	// Copies still running are abandoned; their records say they are
	// not complete, and the next call for them copies again.
	d.copies.stopAll(10 * time.Second)
	if d.shares != nil {
		d.shares.Close()
	}
}

// Run serves the CSI services on cfg.Endpoint until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	d, err := New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	stopMetrics, err := d.serveMetrics(cfg.MetricsAddress)
	if err != nil {
		return err
	}
	defer stopMetrics()
	lis, err := Listen(cfg.Endpoint)
	if err != nil {
		return err
	}
	srv := d.NewGRPCServer()
	klog.InfoS("Serving CSI", "driver", cfg.DriverName, "version", Version(), "mode", cfg.Mode, "endpoint", cfg.Endpoint, "node", cfg.NodeID, "clusterID", d.cfg.ClusterID)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down")
		srv.GracefulStop()
		return nil
	case err := <-errc:
		return err
	}
}

// NewGRPCServer registers the services this driver's mode serves.
func (d *Driver) NewGRPCServer() *grpc.Server {
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(d.metrics.recordRPC, logAndRecover))
	csi.RegisterIdentityServer(srv, d)
	if d.cfg.runsController() {
		csi.RegisterControllerServer(srv, d)
	}
	if d.cfg.runsNode() {
		csi.RegisterNodeServer(srv, d)
	}
	return srv
}

// Listen opens a unix:// or tcp:// endpoint, replacing a stale socket file.
func Listen(endpoint string) (net.Listener, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("--endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Host + u.Opaque
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, err
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove stale socket %s: %w", p, err)
		}
		return net.Listen("unix", p)
	case "tcp":
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("--endpoint %q: want unix:///path or tcp://host:port", endpoint)
}

// logAndRecover logs every call with its secrets stripped, and turns a panic
// into Internal so one bad request cannot take the node's mounts down with it.
func logAndRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", r), "CSI call panicked", "method", info.FullMethod, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
	}()
	klog.V(2).InfoS("CSI request", "method", info.FullMethod, "request", protosanitizer.StripSecrets(req))
	resp, err = handler(ctx, req)
	if err != nil {
		klog.ErrorS(err, "CSI call failed", "method", info.FullMethod, "duration", time.Since(start))
	} else {
		klog.V(2).InfoS("CSI response", "method", info.FullMethod, "response", protosanitizer.StripSecrets(resp), "duration", time.Since(start))
	}
	return resp, err
}
