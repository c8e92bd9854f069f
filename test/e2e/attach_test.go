//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Scenario 3: the attach/detach controller and csi-attacher drive
// ControllerPublishVolume; a RWO claim is refused on a second node with a
// Multi-Attach error until the first pod is gone, then moves there.
func TestAttachDetach(t *testing.T) {
	ctx := testContext(t)
	ns := namespace(t, ctx, bed, "attach")
	pv := provision(t, ctx, bed, claim(ns, "db", "nfs-delete", corev1.ReadWriteOnce))

	first := runPod(t, ctx, nodeA, ns, "db-0", "db")
	va, err := bed.FindAttachment(ctx, pv.Name, nodeA.Name)
	if err != nil || va == nil {
		t.Fatalf("no VolumeAttachment for %s on %s: %v", pv.Name, nodeA.Name, err)
	}
	if va.Spec.Attacher != bed.DriverName || !va.Status.Attached {
		t.Errorf("VolumeAttachment %s: attacher %q attached %v", va.Name, va.Spec.Attacher, va.Status.Attached)
	}
	writeFile(t, filepath.Join(first.Mounts["db"], "hello.txt"), "written on node-a\n")
	if got := readFile(t, onExport("attach/db/hello.txt")); got != "written on node-a\n" {
		t.Errorf("export has %q", got)
	}

	// The same RWO claim on a second node: Multi-Attach, and no attachment.
	second, err := nodeB.CreatePod(ctx, ns, "db-1", "db")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := bed.WaitEvent(ctx, ns, "Pod", "db-1", "FailedAttachVolume", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Kubernetes 1.37 words the Multi-Attach error "Waiting for detach";
	// older releases say "Multi-Attach error". Both name the pod in the way.
	if !strings.Contains(ev.Message, "Multi-Attach error") && !strings.Contains(ev.Message, "Waiting for detach") ||
		!strings.Contains(ev.Message, "used by pod(s) db-0") {
		t.Errorf("FailedAttachVolume event says %q, want a Multi-Attach error naming pod db-0", ev.Message)
	}
	t.Logf("second node's pod: FailedAttachVolume: %s", ev.Message)
	if va, _ := bed.FindAttachment(ctx, pv.Name, nodeB.Name); va != nil {
		t.Errorf("RWO volume got a second VolumeAttachment %s on %s", va.Name, nodeB.Name)
	}

	// The first pod goes: unmounted, detached; then the second attaches.
	stopPod(t, ctx, nodeA, first)
	if err := bed.WaitDetached(ctx, pv.Name, nodeA.Name, time.Minute); err != nil {
		t.Fatalf("not detached from %s: %v", nodeA.Name, err)
	}
	moved, err := nodeB.Start(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(moved.Mounts["db"], "hello.txt")); got != "written on node-a\n" {
		t.Errorf("node-b reads %q", got)
	}
	stopPod(t, ctx, nodeB, moved)
	if err := bed.WaitDetached(ctx, pv.Name, nodeB.Name, time.Minute); err != nil {
		t.Fatalf("not detached from %s: %v", nodeB.Name, err)
	}
	deleteClaim(t, ctx, bed, ns, "db")
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
}
