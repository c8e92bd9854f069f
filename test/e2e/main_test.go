//go:build e2e

// Package e2e runs the driver on a real Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager built by build-bins.sh) with the
// real csi-provisioner and csi-attacher, against the kernel NFS server in
// the user-mode-Linux guest. Start it with `make e2e` (test/e2e/run.sh).
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// The bed every scenario shares: cluster A with two Nodes.
var (
	bed          *framework.Bed
	nodeA, nodeB *framework.Node
	cfg          framework.Config
	// exportDir is the NFSv3 export as the server sees it; the v4
	// pseudo-root "/" is the same directory.
	exportDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Generous: under load, UML makes the apiserver's start take minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	if cfg, err = framework.ConfigFromEnv("e2e"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	exportDir = os.Getenv("NFS_EXPORT_DIR")
	start := time.Now()
	bed, err = framework.StartBed(ctx, cfg, "a", 2379)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cluster a:", err)
		return 1
	}
	defer bed.Stop()
	if nodeA, err = bed.AddNode(ctx, "node-a"); err == nil {
		nodeB, err = bed.AddNode(ctx, "node-b")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: nodes:", err)
		return 1
	}
	fmt.Printf("e2e: cluster a ready in %.1fs: %d chart objects installed, cluster ID %s, nodes node-a and node-b\n",
		time.Since(start).Seconds(), len(bed.Installed), bed.ClusterID)
	return m.Run()
}
