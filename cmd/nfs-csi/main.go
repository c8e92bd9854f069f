// Command nfs-csi is the CSI driver for NFS subdirectories. One binary serves
// the Identity service plus the Controller service, the Node service or both.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/driver"
)

// subcommands are the admin's commands beside the driver itself.
var subcommands = map[string]func(args []string) int{
	"records": runRecords,
	"import":  runImport,
	"migrate": runMigrate,
}

func main() {
	if len(os.Args) > 1 {
		if run, ok := subcommands[os.Args[1]]; ok {
			os.Exit(run(os.Args[2:]))
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(runAgent(os.Args[2:]))
	}
	klog.InitFlags(nil)
	var cfg driver.Config
	flag.StringVar(&cfg.Endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint: unix:///path/to/socket or tcp://host:port")
	flag.StringVar(&cfg.NodeID, "nodeid", "", "this node's ID (the Kubernetes node name); required when the node service runs")
	flag.StringVar(&cfg.DriverName, "drivername", driver.DefaultDriverName, "CSI driver name, as used in StorageClass provisioner and CSIDriver")
	flag.StringVar(&cfg.Mode, "mode", driver.ModeBoth, "services to serve besides Identity: controller, node or both")
	flag.StringVar(&cfg.WorkDir, "workdir", "/var/lib/nfs-csi", "directory under which the controller mounts NFS shares")
	flag.DurationVar(&cfg.ShareIdleTimeout, "share-idle-timeout", driver.DefaultShareIdleTimeout, "unmount a controller share mount after it has been unused this long")
	flag.DurationVar(&cfg.OperationTimeout, "nfs-timeout", driver.DefaultOperationTimeout, "bound on every NFS mount and file-system call")
	flag.StringVar(&cfg.ClusterID, "cluster-id", "", "a stable identifier of the Kubernetes cluster this controller serves, e.g. the UID of the kube-system namespace; "+
		"written into each volume's creation record, so that a PV copied into another cluster cannot delete or archive this cluster's data. "+
		"Keep it unchanged: DeleteVolume refuses volumes whose record names another ID. "+
		"\""+driver.ClusterIDAuto+"\": read the kube-system Namespace's UID from the Kubernetes API at start (needs get on namespaces/kube-system)")
	flag.StringVar(&cfg.ShareMountOptions, "share-mount-options", "", "mount options of the controller's own share mounts per server and share, replacing those the volume IDs carry, "+
		`as JSON: [{"server":"nfs.example.internal","share":"/srv/nfs","mountOptions":["nfsvers=4.1"]}]`)
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the controller's Kubernetes API access (for --cluster-id=auto and the CSINode check of ControllerPublishVolume); "+
		"empty: the pod's in-cluster configuration, when it runs in a pod")
	flag.StringVar(&cfg.MetricsAddress, "metrics-address", "", "host:port to serve Prometheus metrics on at /metrics, e.g. :9810; empty serves none")
	showVersion := flag.Bool("version", false, "print version, commit and Go/OS/arch, then exit")
	flag.Parse()

	if *showVersion {
		fmt.Println(driver.VersionInfo())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := driver.Run(ctx, cfg); err != nil {
		klog.ErrorS(err, "nfs-csi stopped")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
