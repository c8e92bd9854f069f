//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// kubectl runs the real kubectl against a cluster and returns its stdout.
func kubectl(t *testing.T, c *framework.Cluster, args ...string) string {
	t.Helper()
	cmd := exec.Command(cfg.Bins.Kubectl, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s (cluster %s): %v\n%s", strings.Join(args, " "), c.Name, err, stderr.String())
	}
	return string(out)
}

// kubectlApply applies a YAML document with kubectl.
func kubectlApply(t *testing.T, c *framework.Cluster, name, doc string) string {
	t.Helper()
	path := filepath.Join(cfg.Dir, c.Name+"-"+name+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return kubectl(t, c, "apply", "-f", path)
}

// withoutResourceVersion is the one edit a naive copy needs: the apiserver
// refuses to create an object that carries a resourceVersion.
func withoutResourceVersion(t *testing.T, doc string) string {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "resourceVersion")
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Scenario 5, seed 004: a volume of cluster A is made available in cluster B
// (active/active sites sharing one NFS server). Copying the objects as
// `kubectl get -o yaml` prints them leaves B's claim Lost; the documented
// way (docs/cluster-move.md) binds, mounts the same data, and never deletes
// it from B.
func TestMoveBetweenClusters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	a := bed.Cluster

	// Cluster A: a dynamically provisioned RWX claim with live data.
	ns := namespace(t, ctx, bed, "move")
	pv := provision(t, ctx, bed, claim(ns, "shared", "nfs-delete", corev1.ReadWriteMany))
	writer := runPod(t, ctx, nodeA, ns, "writer", "shared")
	writeFile(t, filepath.Join(writer.Mounts["shared"], "orders.db"), "cluster A data\n")
	pvYAML := kubectl(t, a, "get", "pv", pv.Name, "-o", "yaml")
	pvcYAML := kubectl(t, a, "get", "pvc", "-n", ns, "shared", "-o", "yaml")

	// Cluster B: its own etcd, control plane, driver install and node, with
	// only the sidecars this scenario uses.
	start := time.Now()
	cfgB := cfg
	cfgB.CoreOnly = true
	b, err := framework.StartBed(ctx, cfgB, "b", 12379)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	nodeB1, err := b.AddNode(ctx, "node-b1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster b ready in %.1fs, cluster ID %s (a: %s)", time.Since(start).Seconds(), b.ClusterID, bed.ClusterID)
	if b.ClusterID == bed.ClusterID {
		t.Fatalf("both clusters have ID %s", b.ClusterID)
	}
	kubectl(t, b.Cluster, "create", "namespace", ns)

	t.Run("naive copy ends Lost and deletes nothing", func(t *testing.T) {
		kubectlApply(t, b.Cluster, "naive-pv", withoutResourceVersion(t, pvYAML))
		kubectlApply(t, b.Cluster, "naive-pvc", withoutResourceVersion(t, pvcYAML))
		if _, err := b.WaitClaimPhase(ctx, ns, "shared", corev1.ClaimLost, 2*time.Minute); err != nil {
			t.Fatalf("%v; events: %s", err, b.EventSummary(ctx, ns, "PersistentVolumeClaim", "shared"))
		}
		ev, err := b.WaitEvent(ctx, ns, "PersistentVolumeClaim", "shared", "ClaimMisbound", time.Minute)
		if err != nil {
			t.Error(err)
		} else {
			t.Logf("B's claim: %s: %s", ev.Reason, ev.Message)
			if !strings.Contains(ev.Message, "Two claims are bound to the same volume") {
				t.Errorf("ClaimMisbound says %q", ev.Message)
			}
		}
		// The copied PV is Released in B (its claimRef names A's claim UID),
		// so B's csi-provisioner asks the driver to delete the volume. The
		// creation record names cluster A: the driver refuses.
		ev, err = b.WaitEvent(ctx, "", "PersistentVolume", pv.Name, "VolumeFailedDelete", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("B's PV: %s: %s", ev.Reason, ev.Message)
		for _, want := range []string{"FailedPrecondition", bed.ClusterID, b.ClusterID} {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("VolumeFailedDelete does not name %q: %s", want, ev.Message)
			}
		}
		if got := readFile(t, onExport("move/shared/orders.db")); got != "cluster A data\n" {
			t.Fatalf("A's data after B's delete attempt: %q", got)
		}
		if _, err := bed.WaitClaimBound(ctx, ns, "shared", time.Second); err != nil {
			t.Errorf("A's claim after the naive copy: %v", err)
		}

		// Remove the copy from B without touching the data: Retain, then delete.
		kubectl(t, b.Cluster, "patch", "pv", pv.Name, "--type=merge", "-p", `{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}`)
		kubectl(t, b.Cluster, "delete", "pvc", "-n", ns, "shared", "--wait=false")
		kubectl(t, b.Cluster, "delete", "pv", pv.Name, "--wait=false")
		if err := b.WaitPVGone(ctx, pv.Name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, onExport("move/shared/orders.db")); got != "cluster A data\n" {
			t.Fatalf("A's data after removing the copy from B: %q", got)
		}
	})

	t.Run("documented way binds and mounts the same data", func(t *testing.T) {
		src := pv.Spec.CSI
		doc := fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %[1]s
spec:
  capacity:
    storage: %[2]s
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: nfs-delete
  mountOptions: [%[3]s]
  claimRef:
    namespace: %[4]s
    name: shared
  csi:
    driver: %[5]s
    volumeHandle: %[6]q
    volumeAttributes:
      server: %[7]q
      share: %[8]q
      subDir: %[9]q
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: shared
  namespace: %[4]s
spec:
  accessModes: [ReadWriteMany]
  storageClassName: nfs-delete
  volumeName: %[1]s
  resources:
    requests:
      storage: %[2]s
`, pv.Name, pv.Spec.Capacity.Storage().String(), strings.Join(pv.Spec.MountOptions, ", "), ns,
			src.Driver, src.VolumeHandle, src.VolumeAttributes["server"], src.VolumeAttributes["share"], src.VolumeAttributes["subDir"])
		t.Logf("applied to B:\n%s", doc)
		kubectlApply(t, b.Cluster, "documented", doc)
		got, err := b.WaitClaimBound(ctx, ns, "shared", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != pv.Name {
			t.Fatalf("B's claim bound to %s, want %s", got.Name, pv.Name)
		}
		reader := runPod(t, ctx, nodeB1, ns, "reader", "shared")
		if data := readFile(t, filepath.Join(reader.Mounts["shared"], "orders.db")); data != "cluster A data\n" {
			t.Errorf("B reads %q", data)
		}
		writeFile(t, filepath.Join(reader.Mounts["shared"], "from-b.txt"), "cluster B\n")
		if data := readFile(t, filepath.Join(writer.Mounts["shared"], "from-b.txt")); data != "cluster B\n" {
			t.Errorf("A reads B's write as %q", data)
		}

		// B lets go: Retain keeps the data, and A's claim is untouched.
		stopPod(t, ctx, nodeB1, reader)
		if err := b.WaitDetached(ctx, pv.Name, nodeB1.Name, time.Minute); err != nil {
			t.Error(err)
		}
		if err := b.Cluster.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "shared", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := b.Cluster.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitPVGone(ctx, pv.Name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if data := readFile(t, onExport("move/shared/orders.db")); data != "cluster A data\n" {
			t.Errorf("after B deleted its objects: %q", data)
		}
	})

	// A still owns the volume and can delete it.
	stopPod(t, ctx, nodeA, writer)
	if err := bed.WaitDetached(ctx, pv.Name, nodeA.Name, time.Minute); err != nil {
		t.Error(err)
	}
	deleteClaim(t, ctx, bed, ns, "shared")
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	if isDir(onExport("move/shared")) {
		t.Errorf("cluster A's delete left move/shared")
	}
}
