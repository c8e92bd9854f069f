//go:build e2e

// Package node runs the chart's own pods on a real node: a kubelet v1.37
// with containerd and runc in the UML guest, next to the control plane and
// the kernel nfsd, the chart installed with `helm install` from images built
// here (the driver's from the Dockerfile). Start it with `make e2e-node`
// (test/e2e/node/run.sh); see test/e2e/README.md.
//
// Scenarios 2, 3 and 6 call t.Parallel. Go runs parallel top-level tests
// only after every serial one has finished, so they never overlap scenario
// 4 (deletes the node plugin's pod) or 5 (restarts the kubelet), which
// disturb every volume on the node; they overlap each other, in namespaces
// of their own, which shares their waits (attach, kubelet sync, container
// starts) on the slow guest.
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	// For the start-up only (the tests have their own): image imports,
	// control plane, kubelet and helm install. Generous: on a loaded
	// machine the imports alone took 9 minutes and the apiserver 5.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
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
	// containerd and the image imports (minutes under UML) before the
	// control plane: run alongside, they took the guest's one CPU from the
	// apiserver, which then missed its start wait.
	defer cluster.Stop()
	defer node.Stop()
	if err := node.StartRuntime(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: real node:", err)
		return 1
	}
	t0 := time.Now()
	guestTop("after the image imports")
	if err := cluster.Start(ctx, bins); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: cluster:", err)
		guestTop("after the control plane failed to start")
		return 1
	}
	if err := cluster.StartScheduler(bins); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: cluster:", err)
		return 1
	}
	fmt.Printf("e2e-node: control plane ready in %.1fs\n", time.Since(t0).Seconds())
	t0 = time.Now()
	if err := node.StartKubelet(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: real node:", err)
		return 1
	}
	fmt.Printf("e2e-node: kubelet started, Node %s Ready in %.1fs\n", nodeName, time.Since(t0).Seconds())
	if err := createAgentSecrets(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node: quota agent's Secrets:", err)
		return 1
	}
	t0 = time.Now()
	if err := cluster.HelmInstall(ctx, os.Getenv("E2E_HELM"), os.Getenv("E2E_CHART_DIR"), release, framework.ChartNamespace,
		filepath.Join(os.Getenv("E2E_CHART_DIR"), "../../test/e2e/node/values.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-node:", err)
		guestTop("after helm install failed")
		return 1
	}
	fmt.Printf("e2e-node: helm install in %.1fs; ready %.1fs after start\n", time.Since(t0).Seconds(), time.Since(start).Seconds())
	rc := m.Run()
	if phases := runPhases(); rc == 0 {
		rc = phases
	}
	return rc
}

// guestTop prints the guest's busiest processes: on a loaded machine the
// control plane started far slower here than in make e2e, and this shows
// what else held the guest's one CPU.
func guestTop(when string) {
	out, err := exec.Command("ps", "-eo", "pid,pcpu,cputime,rss,etime,args", "--sort=-pcpu").CombinedOutput()
	lines := strings.SplitN(string(out), "\n", 13)
	if len(lines) > 12 {
		lines = lines[:12]
	}
	fmt.Printf("e2e-node: guest processes %s (err %v):\n%s\n", when, err, strings.Join(lines, "\n"))
}

// runPhases runs the further phases that E2E_NODE_PHASES names (executables,
// separated by spaces; relative to the repository), after the scenarios and
// while the cluster, the real node and the chart's pods are still up: the
// hook for suites that need the real-node bed, such as the Kubernetes
// storage tests. Each phase gets KUBECONFIG (the admin's) and the bed's
// E2E_NODE_* variables, and prints to the test's output; the first failure
// makes the run fail, and every phase runs. See test/e2e/README.md.
func runPhases() int {
	rc := 0
	for _, phase := range strings.Fields(os.Getenv("E2E_NODE_PHASES")) {
		if !filepath.IsAbs(phase) {
			phase = filepath.Join(os.Getenv("E2E_ROOT"), phase)
		}
		name := filepath.Base(phase)
		fmt.Printf("=== PHASE %s\n", name)
		t0 := time.Now()
		cmd := exec.Command(phase)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(),
			"KUBECONFIG="+cluster.AdminKubeconfig,
			"E2E_NODE_NAME="+nodeName,
			"E2E_NODE_NFS_SERVER="+framework.NodeNFSAddr,
			"E2E_NODE_DRIVER_NAME="+framework.DefaultDriverName,
			"E2E_NODE_KUBELET_DIR="+framework.KubeletDir,
			"E2E_NODE_RELEASE="+release,
			"E2E_NODE_NAMESPACE="+framework.ChartNamespace)
		result := "pass"
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e-node: phase %s: %v\n", phase, err)
			result, rc = "fail", 1
		}
		fmt.Printf("RESULT e2e-node-phase %s %s (%.0fs)\n", name, result, time.Since(t0).Seconds())
	}
	return rc
}
