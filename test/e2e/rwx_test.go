//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 6: seed 002's static NFS PV (an admin's directory, RWX, Retain,
// storageClassName nfs, a claim that binds by class) written as a CSI PV,
// used by pods on two nodes that see each other's writes.
func TestStaticRWXAcrossNodes(t *testing.T) {
	ctx := testContext(t)
	c := bed.Cluster.Client
	// The admin's directory on the server, with a file in it.
	if err := os.MkdirAll(onExport("nfsdata"), 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, onExport("nfsdata/from-admin.txt"), "admin\n")

	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "mypv"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "nfs",
			MountOptions:                  []string{"nfsvers=4.1"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: bed.DriverName,
				// A handle in csi-driver-nfs's format, not this driver's v1#:
				// attach (attachRequired: true) resolves the volume from the
				// attributes, as the node does, so any unique handle works.
				VolumeHandle:     "127.0.0.1#/#nfsdata##",
				VolumeAttributes: map[string]string{"server": "127.0.0.1", "share": "/", "subDir": "nfsdata"},
			}},
		},
	}
	if _, err := c.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, ctx, bed, "static")
	got := provision(t, ctx, bed, claim(ns, "mypvc", "nfs", corev1.ReadWriteMany))
	if got.Name != "mypv" {
		t.Fatalf("mypvc bound to %s, want mypv", got.Name)
	}

	onA := runPod(t, ctx, nodeA, ns, "mypod-a", "mypvc")
	onB := runPod(t, ctx, nodeB, ns, "mypod-b", "mypvc")
	for _, n := range []string{nodeA.Name, nodeB.Name} {
		if va, _ := bed.FindAttachment(ctx, "mypv", n); va == nil || !va.Status.Attached {
			t.Errorf("RWX volume not attached to %s", n)
		}
	}
	writeFile(t, filepath.Join(onA.Mounts["mypvc"], "a.txt"), "from node-a\n")
	writeFile(t, filepath.Join(onB.Mounts["mypvc"], "b.txt"), "from node-b\n")
	if got := readFile(t, filepath.Join(onB.Mounts["mypvc"], "a.txt")); got != "from node-a\n" {
		t.Errorf("node-b reads a.txt as %q", got)
	}
	if got := readFile(t, filepath.Join(onA.Mounts["mypvc"], "b.txt")); got != "from node-b\n" {
		t.Errorf("node-a reads b.txt as %q", got)
	}
	if got := readFile(t, filepath.Join(onA.Mounts["mypvc"], "from-admin.txt")); got != "admin\n" {
		t.Errorf("node-a reads the admin's file as %q", got)
	}

	stopPod(t, ctx, nodeA, onA)
	stopPod(t, ctx, nodeB, onB)
	for _, n := range []string{nodeA.Name, nodeB.Name} {
		if err := bed.WaitDetached(ctx, "mypv", n, time.Minute); err != nil {
			t.Errorf("not detached from %s: %v", n, err)
		}
	}
	deleteClaim(t, ctx, bed, ns, "mypvc")
	// Retain: the PV is Released, the admin's data stays.
	if err := bed.WaitPVPhase(ctx, "mypv", corev1.VolumeReleased, time.Minute); err != nil {
		t.Error(err)
	}
	if err := c.CoreV1().PersistentVolumes().Delete(ctx, "mypv", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := bed.WaitPVGone(ctx, "mypv", deleteTimeout); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"from-admin.txt", "a.txt", "b.txt"} {
		if _, err := os.Stat(onExport("nfsdata/" + f)); err != nil {
			t.Errorf("after the static PV went: %v", err)
		}
	}
}
