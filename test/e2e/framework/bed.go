//go:build e2e

package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Chart object names, as the chart renders them with release name nfs-csi.
const (
	ChartNamespace     = "kube-system"
	ControllerName     = "nfs-csi-controller"
	NodeDaemonSetName  = "nfs-csi-node"
	ControllerSA       = "nfs-csi-controller"
	DriverContainer    = "nfs-csi"
	ProvisionerName    = "csi-provisioner"
	AttacherName       = "csi-attacher"
	ResizerName        = "csi-resizer"
	DefaultDriverName  = "nfs.csi.example.io"
	controllerStopWait = 10 * time.Second
)

// Config is what a Bed needs from its environment.
type Config struct {
	Bins Bins
	// Driver is the nfs-csi binary.
	Driver string
	// Chart is the `helm template` output whose objects and arguments the bed uses.
	Chart *Chart
	// Dir is scratch space (a tmpfs in the UML guest); LogDir keeps logs.
	Dir, LogDir string
	// CoreOnly installs only what provisioning, attaching and deleting need:
	// the controller plugin with csi-provisioner and csi-attacher, without
	// csi-resizer, csi-snapshotter, the snapshot CRDs and snapshot-controller.
	// The move scenario's second cluster uses it: started while cluster A
	// runs, on the guest's one CPU, the full set took 282 s to be ready.
	CoreOnly bool
}

// Bed is one cluster with the driver installed the way the chart installs
// it: the chart's CSIDriver, RBAC, StorageClasses and VolumeSnapshotClass in
// the apiserver, the controller plugin with csi-provisioner, csi-attacher,
// csi-resizer and csi-snapshotter (authenticated as the chart's
// ServiceAccount), and one node plugin per Node (AddNode). The cluster also
// has what the chart leaves to it: the snapshot CRDs and snapshot-controller
// (snapshots.go).
type Bed struct {
	Cfg            Config
	Cluster        *Cluster
	DriverName     string
	ControllerSock string
	// ClusterID is the kube-system Namespace's UID: what the controller
	// plugin finds with the chart's --cluster-id=auto, reading it with the
	// chart's ServiceAccount and RBAC.
	ClusterID string
	// Installed lists the chart objects applied, as Kind/name.
	Installed  []string
	Controller *Process
	nodes      map[string]*Node
	snapshots  snapshotParts
}

// StartBed starts a cluster named name and installs the driver into it.
func StartBed(ctx context.Context, cfg Config, name string, portBase int) (*Bed, error) {
	c := &Cluster{Name: name, Dir: filepath.Join(cfg.Dir, name), LogDir: cfg.LogDir, PortBase: portBase}
	b := &Bed{Cfg: cfg, Cluster: c, DriverName: DefaultDriverName, nodes: map[string]*Node{}}
	if err := c.Start(ctx, cfg.Bins); err != nil {
		c.Stop()
		return nil, err
	}
	if err := b.install(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// BedOn is a Bed on cluster c, whose driver something else has installed
// (helm, on the real node's bed): AddNode then adds stand-in nodes next to
// real ones. Its Stop ends only those nodes' plugins and the cluster.
func BedOn(c *Cluster, cfg Config, driverName string) *Bed {
	return &Bed{Cfg: cfg, Cluster: c, DriverName: driverName, nodes: map[string]*Node{}}
}

func (b *Bed) install(ctx context.Context) error {
	c := b.Cluster
	var err error
	if b.Installed, err = b.Cfg.Chart.Install(ctx, c); err != nil {
		return err
	}
	// Before the sidecars start: csi-provisioner watches VolumeSnapshots
	// for restores.
	if !b.Cfg.CoreOnly {
		if err := b.installSnapshotAPI(ctx); err != nil {
			return err
		}
	}
	if drivers := b.Cfg.Chart.Kinds("CSIDriver"); len(drivers) == 1 {
		b.DriverName = drivers[0].GetName()
	}
	ks, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return err
	}
	b.ClusterID = string(ks.UID)

	// The controller plugin and its sidecars talk to the apiserver as the
	// chart's controller ServiceAccount, so the chart's RBAC is what they get.
	kubeconfig, err := c.ServiceAccountKubeconfig(ctx, ChartNamespace, ControllerSA)
	if err != nil {
		return err
	}

	// The controller plugin, with the chart's arguments.
	args, err := b.Cfg.Chart.ContainerArgs("Deployment", ControllerName, DriverContainer)
	if err != nil {
		return err
	}
	b.ControllerSock = filepath.Join(c.Dir, "controller", "csi.sock")
	if err := os.MkdirAll(filepath.Dir(b.ControllerSock), 0o755); err != nil {
		return err
	}
	args = setFlag(args, "--endpoint", "unix://"+b.ControllerSock)
	args = setFlag(args, "--workdir", filepath.Join(c.Dir, "controller", "work"))
	args = setFlag(args, "--kubeconfig", kubeconfig)
	args = setFlag(args, "--metrics-address", privateMetricsAddress)
	if b.Controller, err = c.StartComponent("nfs-csi-controller", b.Cfg.Driver, args...); err != nil {
		return err
	}
	if err := waitCSI(ctx, b.ControllerSock, b.Controller); err != nil {
		return err
	}
	if slices.Contains(args, "--cluster-id=auto") {
		if err := foundClusterID(b.Controller, b.ClusterID); err != nil {
			return err
		}
	}

	for _, sidecar := range []struct{ container, bin string }{
		{ProvisionerName, b.Cfg.Bins.Provisioner},
		{AttacherName, b.Cfg.Bins.Attacher},
	} {
		if _, err := b.startSidecar(sidecar.container, sidecar.bin, kubeconfig); err != nil {
			return err
		}
	}
	if b.Cfg.CoreOnly {
		return nil
	}
	if _, err := b.startSidecar(ResizerName, b.Cfg.Bins.Resizer, kubeconfig); err != nil {
		return err
	}
	return b.startSnapshotter(kubeconfig)
}

// startSidecar runs bin with the arguments of the chart's controller
// container of that name, on the controller plugin's socket, as the
// ServiceAccount of kubeconfig.
func (b *Bed) startSidecar(container, bin, kubeconfig string) (*Process, error) {
	args, err := b.Cfg.Chart.ContainerArgs("Deployment", ControllerName, container)
	if err != nil {
		return nil, err
	}
	args = setFlag(args, "--csi-address", b.ControllerSock)
	args = append(args, "--kubeconfig="+kubeconfig)
	if slices.Contains(args, "--leader-election") {
		args = append(args, sidecarLeaseTimes...)
	}
	return b.Cluster.StartComponent(container, bin, args...)
}

// sidecarLeaseTimes replace the sidecars' leader-election defaults (15 s
// lease, 10 s renew deadline). A sidecar that misses its renew deadline
// exits ("Stopped leading"), and here no kubelet restarts it: in a run on a
// loaded machine, with the snapshot components added, csi-provisioner,
// csi-attacher and csi-snapshotter all exited in the same second when the
// guest's apiserver answered the lease updates too late, and every later
// claim stayed Pending.
var sidecarLeaseTimes = []string{
	"--leader-election-lease-duration=3m", "--leader-election-renew-deadline=2m", "--leader-election-retry-period=10s",
}

// Stop ends the node plugins and the cluster.
func (b *Bed) Stop() {
	for _, n := range b.nodes {
		n.Proc.Stop(controllerStopWait)
	}
	b.Cluster.Stop()
}

// setFlag replaces --name=... in args, or appends it.
// privateMetricsAddress replaces the chart's metrics port: the bed's plugins
// share one network namespace (two clusters' controllers, several stand-in
// nodes), where the chart's fixed host port can be bound only once.
const privateMetricsAddress = "127.0.0.1:0"

func setFlag(args []string, name, value string) []string {
	for i, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			args[i] = name + "=" + value
			return args
		}
	}
	return append(args, name+"="+value)
}

// foundClusterID checks that the controller plugin found the cluster ID with
// --cluster-id=auto: the chart's RBAC let its ServiceAccount read the
// kube-system Namespace, and the UID is the one the bed reads itself.
func foundClusterID(p *Process, want string) error {
	log, err := os.ReadFile(p.Log)
	if err != nil {
		return err
	}
	if !strings.Contains(string(log), `"Found the cluster ID" clusterID="`+want+`"`) {
		return fmt.Errorf("the controller did not find the cluster ID %s with --cluster-id=auto and the chart's RBAC:\n%s", want, p.Tail(20))
	}
	return nil
}

// waitCSI waits until the plugin at sock answers Probe with ready.
func waitCSI(ctx context.Context, sock string, proc *Process) error {
	conn, err := DialCSI(sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := csi.NewIdentityClient(conn)
	err = poll(ctx, 60*time.Second, proc, func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := id.Probe(cctx, &csi.ProbeRequest{})
		return err == nil && (resp.GetReady() == nil || resp.GetReady().GetValue()), nil
	})
	if err != nil {
		return fmt.Errorf("%s on %s not ready: %w\n%s", proc.Name, sock, err, proc.Tail(20))
	}
	return nil
}

// DialCSI connects to a plugin's unix socket.
func DialCSI(sock string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// ConfigFromEnv builds a Config from the variables hack/e2e-env.sh exports
// in the guest. name picks the default scratch and log directories.
func ConfigFromEnv(name string) (Config, error) {
	bins, err := BinsFromEnv()
	if err != nil {
		return Config{}, err
	}
	if os.Getenv("E2E_CHART") == "" {
		return Config{}, fmt.Errorf("E2E_CHART is not set; start this through make e2e or make demo")
	}
	chart, err := LoadChart(os.Getenv("E2E_CHART"))
	if err != nil {
		return Config{}, err
	}
	return Config{
		Bins:   bins,
		Driver: os.Getenv("E2E_DRIVER"),
		Chart:  chart,
		Dir:    envOr("E2E_DIR", filepath.Join(os.TempDir(), name)),
		LogDir: envOr("E2E_LOG_DIR", filepath.Join(os.TempDir(), name+"-logs")),
	}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
