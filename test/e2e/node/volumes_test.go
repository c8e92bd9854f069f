//go:build e2e

package node

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// ticker writes a counter into /data/tick every second, so that the export
// shows whether the pod still writes through its mount.
const ticker = `i=0; while true; do i=$((i+1)); echo $i > /data/tick; sleep 1; done`

// TestPodWritesToExport is scenario 2: a pod with a PVC of the default class
// writes a file, which is on the export in the class's subDir; the volume is
// mounted (NFS) at the kubelet's target path in the node's mount namespace,
// which only Bidirectional propagation from the node plugin's container
// makes possible; after the pod is deleted, nothing is mounted there.
func TestPodWritesToExport(t *testing.T) {
	t.Parallel() // after the serial tests (package comment)
	ctx := testContext(t, 15*time.Minute)
	ns := createNamespace(t, ctx, "s2")
	createClaim(t, ctx, ns, "data", "nfs")
	pv := boundPV(t, ctx, ns, "data")
	pod := runPod(t, ctx, shellPod(ns, "writer", "data", `echo hello-from-pod > /data/hello; sleep 3600`))
	waitFile(t, ctx, filepath.Join(exportDir, ns, "data", "hello"), "hello-from-pod")
	target := volumeTarget(pod, pv)
	if src, fstype := mountedAt(t, target); fstype != "nfs4" && fstype != "nfs" {
		t.Errorf("at %s: %q %q mounted, want the NFS share (Bidirectional propagation from the node plugin)", target, src, fstype)
	} else {
		t.Logf("%s: %s (%s)", target, src, fstype)
	}
	deletePod(t, ctx, pod)
	if src, fstype := mountedAt(t, target); src != "" {
		t.Errorf("after the pod is gone, %s still has %s (%s) mounted", target, src, fstype)
	}
}

// TestFSGroupRootSquash is scenario 3: a pod running as user 1000 with
// fsGroup 2000 writes to a fresh volume on the root_squash export, with the
// chart's default fsGroupPolicy (File).
func TestFSGroupRootSquash(t *testing.T) {
	t.Parallel() // after the serial tests (package comment)
	ctx := testContext(t, 15*time.Minute)
	ns := createNamespace(t, ctx, "s3")
	createClaim(t, ctx, ns, "data", "nfs-squash")
	pv := boundPV(t, ctx, ns, "data")
	p := shellPod(ns, "nonroot", "data", `id > /data/id && echo written > /data/file; sleep 3600`)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(1000)), FSGroup: ptr(int64(2000)), RunAsNonRoot: ptr(true),
	}
	pod := runPod(t, ctx, p)
	// The class has no subDir: the directory is the PV's name.
	file := filepath.Join(framework.SquashExport, pv, "file")
	waitFile(t, ctx, file, "written")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	t.Logf("%s: uid %d gid %d mode %v; directory: %s", file, sys.Uid, sys.Gid, st.Mode(), statString(filepath.Dir(file)))
	if sys.Uid != 1000 {
		t.Errorf("%s is owned by uid %d, want 1000 (the pod's user)", file, sys.Uid)
	}
	deletePod(t, ctx, pod)
}

func statString(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	sys := st.Sys().(*syscall.Stat_t)
	return "uid " + strconv.Itoa(int(sys.Uid)) + " gid " + strconv.Itoa(int(sys.Gid)) + " mode " + st.Mode().String()
}

// waitTicking waits until the pod's counter on the export advances, i.e. the
// pod still writes through its mount.
func waitTicking(t *testing.T, path, when string) {
	t.Helper()
	first, _ := os.ReadFile(path)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		now, err := os.ReadFile(path)
		if err == nil && len(now) > 0 && string(now) != string(first) {
			return
		}
	}
	t.Fatalf("%s: %s stopped changing (still %q): the pod no longer writes through its mount", when, path, first)
}

// startTicker runs the ticker pod in a new namespace ns with a claim of the
// default class, and waits until it writes. It returns the pod, the
// counter's path on the export and the volume's target path on the node.
func startTicker(t *testing.T, ctx context.Context, ns string) (pod *corev1.Pod, tick, target string) {
	t.Helper()
	createNamespace(t, ctx, ns)
	createClaim(t, ctx, ns, "data", "nfs")
	pv := boundPV(t, ctx, ns, "data")
	pod = runPod(t, ctx, shellPod(ns, "ticker", "data", ticker))
	tick = filepath.Join(exportDir, ns, "data", "tick")
	waitTicking(t, tick, "after the pod started")
	return pod, tick, volumeTarget(pod, pv)
}

// TestNodePluginRestart is scenario 4: the node plugin's pod is deleted while
// a pod uses a volume. The mount survives (it lives in the node's mount
// namespace, not the plugin container's) and the pod keeps writing; the
// DaemonSet's new plugin pod registers, and unpublishes the volume cleanly
// when the user pod goes.
func TestNodePluginRestart(t *testing.T) {
	ctx := testContext(t, 20*time.Minute)
	pod, tick, target := startTicker(t, ctx, "s4")

	plugins, err := cluster.WaitPodsReady(ctx, framework.ChartNamespace, nodeSelector, 1, podsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	old := plugins[0]
	start := time.Now()
	if err := cluster.Client.CoreV1().Pods(old.Namespace).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// While no plugin runs, the mount and the pod's writes go on.
	if src, _ := mountedAt(t, target); src == "" {
		t.Errorf("after deleting plugin pod %s, nothing is mounted at %s", old.Name, target)
	}
	waitTicking(t, tick, "after deleting the plugin pod")
	err = pollFor(ctx, podsTimeout, func() bool {
		list, err := cluster.Client.CoreV1().Pods(framework.ChartNamespace).List(ctx, metav1.ListOptions{LabelSelector: nodeSelector})
		if err != nil || len(list.Items) != 1 {
			return false
		}
		p := list.Items[0]
		return p.UID != old.UID && framework.PodReady(&p)
	})
	if err != nil {
		t.Fatalf("no new plugin pod Ready after deleting %s: %v\n%s", old.Name, err, cluster.PodsReport(ctx, framework.ChartNamespace, nodeSelector))
	}
	t.Logf("new plugin pod Ready %.1fs after deleting %s", time.Since(start).Seconds(), old.Name)
	waitTicking(t, tick, "with the new plugin pod")
	start = time.Now()
	deletePod(t, ctx, pod)
	t.Logf("pod %s/%s deleted and unpublished in %.1fs", pod.Namespace, pod.Name, time.Since(start).Seconds())
	if src, fstype := mountedAt(t, target); src != "" {
		t.Errorf("the new plugin pod left %s (%s) mounted at %s", src, fstype, target)
	}
}

// TestKubeletRestart is scenario 5: the kubelet is restarted while a pod
// uses a volume. It reconstructs the volume from the mount, publishes it
// again (the driver must answer that idempotently), the pod keeps writing,
// and deleting the pod unmounts it.
func TestKubeletRestart(t *testing.T) {
	ctx := testContext(t, 20*time.Minute)
	pod, tick, target := startTicker(t, ctx, "s5")
	ns := pod.Namespace

	node.StopKubelet()
	waitTicking(t, tick, "while the kubelet is stopped")
	if err := node.StartKubelet(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitPodsReady(ctx, ns, "e2e-pod=ticker", 1, podsTimeout); err != nil {
		t.Fatal(err)
	}
	waitTicking(t, tick, "after the kubelet restart")
	if src, _ := mountedAt(t, target); src == "" {
		t.Errorf("after the kubelet restart, nothing is mounted at %s", target)
	}
	deletePod(t, ctx, pod)
	if src, fstype := mountedAt(t, target); src != "" {
		t.Errorf("after the kubelet restart and the pod's deletion, %s (%s) is still mounted at %s", src, fstype, target)
	}
}
