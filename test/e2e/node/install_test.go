//go:build e2e

package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/test/e2e/framework"
)

const (
	controllerSelector = "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=controller"
	nodeSelector       = "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=node"
	// The chart's default controller.replicas and health ports.
	controllerReplicas = 2
	nodeHealthPort     = "29653"
	controllerHealth   = "29652"
	// Container starts take 8 to 23 s under UML; five containers a pod.
	podsTimeout = 10 * time.Minute
)

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestHelmInstall is scenario 1: `helm install` with the chart's defaults
// plus StorageClasses on the bed's server runs every pod Running and Ready
// on the real node, node-driver-registrar registers the plugin with the
// kubelet (the CSINode lists the driver, with the node ID from
// NodeGetInfo), and livenessprobe answers /healthz on the chart's ports.
func TestHelmInstall(t *testing.T) {
	ctx := testContext(t, podsTimeout+2*time.Minute)
	c := cluster
	start := time.Now()
	ctrl, err := c.WaitPodsReady(ctx, framework.ChartNamespace, controllerSelector, controllerReplicas, podsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.WaitPodsReady(ctx, framework.ChartNamespace, nodeSelector, 1, podsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d controller and %d node pods Running and Ready %.1fs after helm install returned", len(ctrl), len(nodes), time.Since(start).Seconds())
	for _, p := range append(ctrl, nodes...) {
		if p.Spec.NodeName != nodeName {
			t.Errorf("pod %s runs on %q, want the real node %s", p.Name, p.Spec.NodeName, nodeName)
		}
	}

	var drivers []string
	err = pollFor(ctx, 2*time.Minute, func() bool {
		csiNode, err := c.Client.StorageV1().CSINodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		drivers = drivers[:0]
		for _, d := range csiNode.Spec.Drivers {
			drivers = append(drivers, d.Name+"="+d.NodeID)
		}
		return len(drivers) > 0
	})
	if err != nil {
		t.Fatalf("CSINode %s lists no driver: %v", nodeName, err)
	}
	if want := framework.DefaultDriverName + "=" + nodeName; len(drivers) != 1 || drivers[0] != want {
		t.Errorf("CSINode %s drivers = %v, want [%s] (the driver name and the node ID from NodeGetInfo)", nodeName, drivers, want)
	}

	// The node pod uses the host network: its health port is the node's.
	// The controller pods are on the pod network, at their pod IPs.
	urls := []string{"http://" + framework.NodeNFSAddr + ":" + nodeHealthPort + "/healthz"}
	for _, p := range ctrl {
		urls = append(urls, "http://"+p.Status.PodIP+":"+controllerHealth+"/healthz")
	}
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("livenessprobe: GET %s: %v", u, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
			t.Errorf("livenessprobe: GET %s = %d %q, want 200 ok", u, resp.StatusCode, body)
		}
	}
}

// pollFor checks cond every 500 ms until it holds or timeout passes.
func pollFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
