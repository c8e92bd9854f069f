//go:build e2e

package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// standInName is the second node's Node name: a stand-in for a kubelet
// (framework/kubelet.go) with its own node plugin process, next to the real
// node. A second real kubelet in the same guest would share the guest's one
// network namespace with the first, and the chart's node pods use the host
// network with fixed host ports (healthPort, metricsPort): the DaemonSet's
// second pod could never start. Each kubelet would also need a containerd of
// its own, since a kubelet removes the sandboxes it finds in its runtime
// that belong to no pod of its node.
const standInName = "node-b"

// TestRWOMovesBetweenNodes is scenario 6: a ReadWriteOnce volume moves from
// the real node to a second node and back, through detach and attach. While
// a pod on one node uses it, a pod on the other gets FailedAttachVolume
// naming the first pod and no VolumeAttachment; once the first pod is gone,
// the real kubelet has unmounted it, the attach/detach controller detaches
// it and attaches it to the other node, and the data written on one node is
// read on the other.
func TestRWOMovesBetweenNodes(t *testing.T) {
	t.Parallel() // after the serial tests (package comment)
	ctx := testContext(t, 25*time.Minute)
	bed, standIn := addStandIn(t, ctx)
	ns := createNamespace(t, ctx, "s6")
	createClaim(t, ctx, ns, "data", "nfs")
	pv := boundPV(t, ctx, ns, "data")
	exported := filepath.Join(exportDir, ns, "data")

	// 1. On the real node.
	writer := runPod(t, ctx, shellPod(ns, "writer-a", "data", `echo from-`+nodeName+` > /data/a; sleep 3600`))
	waitFile(t, ctx, filepath.Join(exported, "a"), "from-"+nodeName)
	if _, err := bed.WaitAttached(ctx, pv, nodeName, 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	// 2. The same claim on the stand-in node: refused while the real node
	// has it.
	created, err := standIn.CreatePod(ctx, ns, "reader-b", "data")
	if err != nil {
		t.Fatal(err)
	}
	waitMultiAttach(t, ctx, bed, ns, "reader-b", "writer-a")
	if va, err := bed.FindAttachment(ctx, pv, standInName); err != nil || va != nil {
		t.Errorf("VolumeAttachment of %s to %s while %s uses it: %v (err %v), want none", pv, standInName, nodeName, va, err)
	}

	// 3. The real pod goes: the kubelet unmounts, the volume is detached
	// from the real node and attached to the stand-in, which reads the
	// real pod's file and writes its own.
	deletePod(t, ctx, writer)
	if err := bed.WaitDetached(ctx, pv, nodeName, 5*time.Minute); err != nil {
		t.Fatalf("PV %s not detached from %s after its pod went: %v", pv, nodeName, err)
	}
	onB, err := standIn.Start(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	target := onB.Mounts["data"]
	if b, err := os.ReadFile(filepath.Join(target, "a")); err != nil || strings.TrimSpace(string(b)) != "from-"+nodeName {
		t.Errorf("on %s, %s/a = %q (err %v), want the real node's write", standInName, target, b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "b"), []byte("from-"+standInName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// 4. Back to the real node: its new pod waits for the attachment until
	// the stand-in lets go, then reads the stand-in's write.
	back := shellPod(ns, "reader-a", "data", `cp /data/b /data/b-seen-on-a; sleep 3600`)
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, back, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMultiAttach(t, ctx, bed, ns, "reader-a", "reader-b")
	if err := standIn.StopPod(ctx, onB); err != nil {
		t.Fatal(err)
	}
	if err := bed.WaitDetached(ctx, pv, standInName, 5*time.Minute); err != nil {
		t.Fatalf("PV %s not detached from %s after its pod went: %v", pv, standInName, err)
	}
	if _, err := cluster.WaitPodsReady(ctx, ns, "e2e-pod=reader-a", 1, podsTimeout); err != nil {
		t.Fatal(err)
	}
	waitFile(t, ctx, filepath.Join(exported, "b-seen-on-a"), "from-"+standInName)
	reader, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "reader-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deletePod(t, ctx, reader)
	if err := bed.WaitDetached(ctx, pv, nodeName, 5*time.Minute); err != nil {
		t.Errorf("PV %s not detached from %s at the end: %v", pv, nodeName, err)
	}
}

// addStandIn adds the stand-in node next to the real one, with its own node
// plugin process (bin/nfs-csi, the chart's node arguments); the test's end
// stops the plugin. Its Node carries no kubernetes.io/os label, so neither
// the chart's DaemonSet nor its Deployment lands pods there.
func addStandIn(t *testing.T, ctx context.Context) (*framework.Bed, *framework.Node) {
	t.Helper()
	cfg, err := framework.ConfigFromEnv("e2e-node")
	if err != nil {
		t.Fatal(err)
	}
	bed := framework.BedOn(cluster, cfg, framework.DefaultDriverName)
	n, err := bed.AddNode(ctx, standInName)
	if err != nil {
		t.Fatalf("stand-in node %s: %v", standInName, err)
	}
	t.Cleanup(func() { n.Proc.Stop(10 * time.Second) })
	return bed, n
}

// waitMultiAttach waits for the attach/detach controller's FailedAttachVolume
// event on pod, which must name the pod that holds the volume.
func waitMultiAttach(t *testing.T, ctx context.Context, bed *framework.Bed, ns, pod, holder string) {
	t.Helper()
	ev, err := bed.WaitEvent(ctx, ns, "Pod", pod, "FailedAttachVolume", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Kubernetes 1.37 says "Waiting for detach"; older releases
	// "Multi-Attach error". Both name the pod in the way.
	if !strings.Contains(ev.Message, "Multi-Attach error") && !strings.Contains(ev.Message, "Waiting for detach") ||
		!strings.Contains(ev.Message, holder) {
		t.Errorf("pod %s: FailedAttachVolume says %q, want a Multi-Attach error naming pod %s", pod, ev.Message, holder)
	}
	t.Logf("pod %s: FailedAttachVolume: %s", pod, ev.Message)
}
