//go:build e2e

// Package node runs the chart's own pods on a real node: a kubelet v1.37
// with containerd and runc in the UML guest, next to the control plane and
// the kernel nfsd, the chart installed with `helm install` from images built
// here (the driver's from the Dockerfile). Start it with `make e2e-node`
// (test/e2e/node/run.sh); see test/e2e/README.md.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/example/nfs-csi/test/e2e/framework"
)

const (
	// nodeName is the real node's Node name (--hostname-override).
	nodeName = "uml-node"
	release  = "nfs-csi"
)

var (
	cluster *framework.Cluster
	node    *framework.RealNode
	// exportDir is the export as the server sees it.
	exportDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Generous: under UML every container start takes 8 to 23 s.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bins, err := framework.BinsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node:", err)
		return 2
	}
	nodeCfg, err := framework.RealNodeConfigFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node:", err)
		return 2
	}
	exportDir = os.Getenv("NFS_EXPORT_DIR")
	dir := os.Getenv("E2E_DIR")
	start := time.Now()
	cluster = &framework.Cluster{Name: "n", Dir: filepath.Join(dir, "n"), LogDir: os.Getenv("E2E_LOG_DIR"), PortBase: 2379}
	node = framework.NewRealNode(cluster, nodeCfg, nodeName)
	// containerd and the image imports (minutes under UML) while the
	// control plane starts.
	defer cluster.Stop()
	runtime := make(chan error, 1)
	go func() { runtime <- node.StartRuntime(ctx) }()
	defer node.Stop()
	if err := cluster.Start(ctx, bins); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: cluster:", err)
		return 1
	}
	fmt.Printf("e2e-node: control plane ready in %.1fs\n", time.Since(start).Seconds())
	if err := <-runtime; err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: real node:", err)
		return 1
	}
	t0 := time.Now()
	if err := node.StartKubelet(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: real node:", err)
		return 1
	}
	fmt.Printf("e2e-node: kubelet started, Node %s Ready in %.1fs\n", nodeName, time.Since(t0).Seconds())
	t0 = time.Now()
	if err := cluster.HelmInstall(ctx, os.Getenv("E2E_HELM"), os.Getenv("E2E_CHART_DIR"), release, framework.ChartNamespace,
		filepath.Join(os.Getenv("E2E_CHART_DIR"), "../../test/e2e/node/values.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node:", err)
		return 1
	}
	fmt.Printf("e2e-node: helm install in %.1fs; ready %.1fs after start\n", time.Since(t0).Seconds(), time.Since(start).Seconds())
	return runPhase(m.Run())
}
