//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// The snapshot scenarios (issue 10): VolumeSnapshots, restores and clones
// through the real snapshot-controller, csi-snapshotter and
// csi-provisioner, the sidecars authenticated as the chart's ServiceAccount.
// Data goes in and comes out through real NFS mounts of the stand-in
// kubelet; the snapshot's copy is looked at on the export, where
// docs/snapshots.md says it is.

const (
	// snapshotClass is the chart's VolumeSnapshotClass (values.yaml):
	// deletionPolicy Delete.
	snapshotClass = "nfs-snapshots"
	// retainSnapshotClass is made by TestSnapshotDeletionPolicy.
	retainSnapshotClass = "nfs-snapshots-retain"
	snapshotTimeout     = 3 * time.Minute
	// snapshotShare is the share of the class nfs-delete, which every
	// scenario here uses: a restore or clone stays on its source's share.
	snapshotShare = "/run/export"
)

// snapshotData is what the scenarios write before they take a snapshot:
// a file at the top and one in a subdirectory.
var snapshotData = map[string]string{
	"a.txt":     "written before the snapshot\n",
	"dir/b.txt": strings.Repeat("b", 4096),
}

// snapshotContext is longer than testContext: a scenario provisions,
// mounts, snapshots, restores and mounts again, on a loaded UML guest.
func snapshotContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("mkdir through the mount: %v", err)
		}
		writeFile(t, p, content)
	}
}

// checkFiles reports every file of files that dir does not hold with that
// content.
func checkFiles(t *testing.T, what, dir string, files map[string]string) {
	t.Helper()
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", what, err)
		} else if string(got) != want {
			t.Errorf("%s: %s holds %.40q, want %.40q", what, rel, got, want)
		}
	}
}

func absent(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %s exists (or cannot be checked: %v)", what, path, err)
	}
}

func totalBytes(files map[string]string) int64 {
	var n int64
	for _, c := range files {
		n += int64(len(c))
	}
	return n
}

// withData provisions claim name in ns with class nfs-delete, mounts it in a
// pod on node-a and writes files there.
func withData(t *testing.T, ctx context.Context, ns, name string, files map[string]string) (*corev1.PersistentVolume, *framework.Pod) {
	t.Helper()
	pv := provision(t, ctx, bed, claim(ns, name, "nfs-delete", corev1.ReadWriteOnce))
	pod := runPod(t, ctx, nodeA, ns, name+"-writer", name)
	writeFiles(t, pod.Mounts[name], files)
	return pv, pod
}

// claimFrom is a claim of class nfs-delete whose dataSource is kind/name: a
// VolumeSnapshot (a restore) or a PersistentVolumeClaim (a clone).
func claimFrom(ns, name, kind, source string) *corev1.PersistentVolumeClaim {
	pvc := claim(ns, name, "nfs-delete", corev1.ReadWriteOnce)
	pvc.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: kind, Name: source}
	if kind == "VolumeSnapshot" {
		group := "snapshot.storage.k8s.io"
		pvc.Spec.DataSource.APIGroup = &group
	}
	return pvc
}

// takeSnapshot creates a VolumeSnapshot of claim and waits until it and its
// content are ready.
func takeSnapshot(t *testing.T, ctx context.Context, ns, name, class, claim string) (*framework.VolumeSnapshot, *framework.VolumeSnapshotContent) {
	t.Helper()
	if err := bed.CreateVolumeSnapshot(ctx, ns, name, class, claim); err != nil {
		t.Fatalf("create VolumeSnapshot %s/%s: %v", ns, name, err)
	}
	vs, vsc, err := bed.WaitSnapshotReady(ctx, ns, name, snapshotTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return vs, vsc
}

// snapshotOnExport is where, on the server, the driver keeps the snapshot
// of handle (docs/snapshots.md): .nfs-csi/snapshots/<key> and <key>.json,
// key being the first 16 bytes of the SHA-256 of the snapshot's name, in
// hex. The handle is s1#<server>#<share>#<name>#<mountOptions>.
func snapshotOnExport(t *testing.T, handle string) (data, record string) {
	t.Helper()
	fields := strings.Split(handle, "#")
	if len(fields) != 5 || fields[0] != "s1" || fields[2] != snapshotShare {
		t.Fatalf("snapshot handle %q is not s1#<server>#%s#<name>#<mountOptions>", handle, snapshotShare)
	}
	sum := sha256.Sum256([]byte(fields[3]))
	key := hex.EncodeToString(sum[:16])
	return onExport(".nfs-csi/snapshots/" + key), onExport(".nfs-csi/snapshots/" + key + ".json")
}

// snapshotRecord is what the scenarios check of the driver's record of a
// snapshot (docs/snapshots.md, "The record").
type snapshotRecord struct {
	ID             string `json:"id"`
	SourceVolumeID string `json:"sourceVolumeID"`
	Ready          bool   `json:"ready"`
	SizeBytes      int64  `json:"sizeBytes"`
	Method         string `json:"method"`
}

func readSnapshotRecord(t *testing.T, path string) snapshotRecord {
	t.Helper()
	var rec snapshotRecord
	if err := json.Unmarshal([]byte(readFile(t, path)), &rec); err != nil {
		t.Fatalf("snapshot record %s: %v", path, err)
	}
	return rec
}

// Scenario 1: a VolumeSnapshot of a PVC with data goes ReadyToUse; its
// VolumeSnapshotContent has the driver's handle and the size of the data;
// the copy is on the export in the driver's area, not inside the volume.
func TestSnapshotReady(t *testing.T) {
	ctx := snapshotContext(t)
	ns := namespace(t, ctx, bed, "snap-ready")
	pv, pod := withData(t, ctx, ns, "data", snapshotData)

	vs, vsc := takeSnapshot(t, ctx, ns, "data-snap", snapshotClass, "data")
	want := totalBytes(snapshotData)
	if vsc.Spec.Driver != bed.DriverName {
		t.Errorf("VolumeSnapshotContent %s: driver %q, want %q", vsc.Name, vsc.Spec.Driver, bed.DriverName)
	}
	if vsc.Spec.DeletionPolicy != "Delete" || vsc.Spec.VolumeSnapshotClassName != snapshotClass {
		t.Errorf("VolumeSnapshotContent %s: deletionPolicy %q class %q, want Delete and the chart's %s",
			vsc.Name, vsc.Spec.DeletionPolicy, vsc.Spec.VolumeSnapshotClassName, snapshotClass)
	}
	if vsc.Spec.Source.VolumeHandle != pv.Spec.CSI.VolumeHandle {
		t.Errorf("VolumeSnapshotContent %s: source volume %q, want the PV's %q", vsc.Name, vsc.Spec.Source.VolumeHandle, pv.Spec.CSI.VolumeHandle)
	}
	// csi-snapshotter names the snapshot snapshot-<VolumeSnapshot UID>; the
	// driver's handle keeps the source's server, share and mount options.
	wantHandle := fmt.Sprintf("s1#127.0.0.1#%s#snapshot-%s#nfsvers=3", snapshotShare, vs.UID)
	if vsc.Status.SnapshotHandle != wantHandle {
		t.Errorf("snapshotHandle = %q, want %q", vsc.Status.SnapshotHandle, wantHandle)
	}
	if vsc.Status.RestoreSize == nil || *vsc.Status.RestoreSize != want {
		t.Errorf("VolumeSnapshotContent restoreSize = %v, want %d (the bytes written)", vsc.Status.RestoreSize, want)
	}
	if vs.Status.RestoreSize == nil || vs.Status.RestoreSize.Value() != want {
		t.Errorf("VolumeSnapshot restoreSize = %v, want %d", vs.Status.RestoreSize, want)
	}

	data, record := snapshotOnExport(t, vsc.Status.SnapshotHandle)
	checkFiles(t, "the snapshot's copy on the export", data, snapshotData)
	rec := readSnapshotRecord(t, record)
	if rec.ID != vsc.Status.SnapshotHandle || rec.SourceVolumeID != pv.Spec.CSI.VolumeHandle || !rec.Ready || rec.SizeBytes != want {
		t.Errorf("snapshot record %s = %+v, want id %q, source %q, ready, %d bytes", record, rec, vsc.Status.SnapshotHandle, pv.Spec.CSI.VolumeHandle, want)
	}
	t.Logf("snapshot %s: %d bytes by %s", vsc.Status.SnapshotHandle, rec.SizeBytes, rec.Method)

	// The volume's mount shows only what the pod wrote.
	entries, err := os.ReadDir(pod.Mounts["data"])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a.txt", "dir"}) {
		t.Errorf("the volume's mount lists %v after the snapshot, want [a.txt dir]", names)
	}
	stopPod(t, ctx, nodeA, pod)
}

// Scenario 2: a PVC with a dataSource of that snapshot goes Bound, and a pod
// on it reads the data written before the snapshot, not what was written
// after it.
func TestSnapshotRestore(t *testing.T) {
	ctx := snapshotContext(t)
	ns := namespace(t, ctx, bed, "snap-restore")
	_, pod := withData(t, ctx, ns, "data", snapshotData)
	takeSnapshot(t, ctx, ns, "data-snap", snapshotClass, "data")

	src := pod.Mounts["data"]
	writeFile(t, filepath.Join(src, "a.txt"), "written after the snapshot\n")
	writeFile(t, filepath.Join(src, "after.txt"), "new after the snapshot\n")

	pv := provision(t, ctx, bed, claimFrom(ns, "restored", "VolumeSnapshot", "data-snap"))
	if got := pv.Spec.CSI.VolumeAttributes["subDir"]; got != "snap-restore/restored" {
		t.Errorf("restored PV %s: subDir %q, want snap-restore/restored", pv.Name, got)
	}
	reader := runPod(t, ctx, nodeB, ns, "restored-reader", "restored")
	dst := reader.Mounts["restored"]
	checkFiles(t, "the restored volume", dst, snapshotData)
	absent(t, "the restored volume", filepath.Join(dst, "after.txt"))
	checkFiles(t, "the source after the restore", src, map[string]string{"a.txt": "written after the snapshot\n"})
	stopPod(t, ctx, nodeB, reader)
	stopPod(t, ctx, nodeA, pod)
}

// Scenario 3: a PVC with a dataSource of another PVC (a clone) goes Bound
// with the source's data; writing to the clone does not change the source.
func TestCloneFromPVC(t *testing.T) {
	ctx := snapshotContext(t)
	ns := namespace(t, ctx, bed, "clone")
	_, pod := withData(t, ctx, ns, "source", snapshotData)

	pv := provision(t, ctx, bed, claimFrom(ns, "copy", "PersistentVolumeClaim", "source"))
	if got := pv.Spec.CSI.VolumeAttributes["subDir"]; got != "clone/copy" {
		t.Errorf("clone PV %s: subDir %q, want clone/copy", pv.Name, got)
	}
	clone := runPod(t, ctx, nodeB, ns, "copy-user", "copy")
	dst := clone.Mounts["copy"]
	checkFiles(t, "the clone", dst, snapshotData)

	writeFile(t, filepath.Join(dst, "a.txt"), "changed in the clone\n")
	writeFile(t, filepath.Join(dst, "new.txt"), "only in the clone\n")
	if err := os.Remove(filepath.Join(dst, "dir", "b.txt")); err != nil {
		t.Fatalf("remove in the clone: %v", err)
	}
	src := pod.Mounts["source"]
	checkFiles(t, "the source after writes to its clone", src, snapshotData)
	absent(t, "the source after writes to its clone", filepath.Join(src, "new.txt"))
	checkFiles(t, "the source on the export", onExport("clone/source"), snapshotData)
	checkFiles(t, "the clone on the export", onExport("clone/copy"), map[string]string{"a.txt": "changed in the clone\n", "new.txt": "only in the clone\n"})
	stopPod(t, ctx, nodeB, clone)
	stopPod(t, ctx, nodeA, pod)
}

// Scenario 4: deleting a VolumeSnapshot whose class has deletionPolicy
// Delete removes the snapshot from the export; with Retain it stays, and so
// does its VolumeSnapshotContent.
func TestSnapshotDeletionPolicy(t *testing.T) {
	ctx := snapshotContext(t)
	if err := bed.CreateSnapshotClass(ctx, retainSnapshotClass, "Retain"); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create VolumeSnapshotClass %s: %v", retainSnapshotClass, err)
	}
	ns := namespace(t, ctx, bed, "snap-policy")
	_, pod := withData(t, ctx, ns, "data", snapshotData)
	_, deleted := takeSnapshot(t, ctx, ns, "deleted", snapshotClass, "data")
	_, kept := takeSnapshot(t, ctx, ns, "kept", retainSnapshotClass, "data")
	if kept.Spec.DeletionPolicy != "Retain" {
		t.Fatalf("VolumeSnapshotContent %s of class %s: deletionPolicy %q, want Retain", kept.Name, retainSnapshotClass, kept.Spec.DeletionPolicy)
	}
	deletedData, deletedRecord := snapshotOnExport(t, deleted.Status.SnapshotHandle)
	keptData, keptRecord := snapshotOnExport(t, kept.Status.SnapshotHandle)
	for _, p := range []string{deletedData, keptData} {
		if !isDir(p) {
			t.Fatalf("no snapshot copy %s on the export before the deletes", p)
		}
	}

	for _, name := range []string{"deleted", "kept"} {
		if err := bed.DeleteVolumeSnapshot(ctx, ns, name); err != nil {
			t.Fatalf("delete VolumeSnapshot %s/%s: %v", ns, name, err)
		}
	}
	for _, name := range []string{"deleted", "kept"} {
		if err := bed.WaitSnapshotGone(ctx, ns, name, snapshotTimeout); err != nil {
			t.Fatal(err)
		}
	}
	// Delete: csi-snapshotter called DeleteSnapshot, then let the content go.
	if err := bed.WaitSnapshotContentGone(ctx, deleted.Name, snapshotTimeout); err != nil {
		t.Fatal(err)
	}
	absent(t, "deletionPolicy Delete", deletedData)
	absent(t, "deletionPolicy Delete", deletedRecord)

	// Retain, checked after the Delete path has run to its end.
	content, err := bed.GetSnapshotContent(ctx, kept.Name)
	if err != nil {
		t.Fatalf("deletionPolicy Retain: VolumeSnapshotContent %s: %v", kept.Name, err)
	}
	if content.Status.SnapshotHandle != kept.Status.SnapshotHandle {
		t.Errorf("retained VolumeSnapshotContent %s: handle %q, was %q", content.Name, content.Status.SnapshotHandle, kept.Status.SnapshotHandle)
	}
	checkFiles(t, "deletionPolicy Retain: the copy on the export", keptData, snapshotData)
	if rec := readSnapshotRecord(t, keptRecord); rec.ID != kept.Status.SnapshotHandle || !rec.Ready {
		t.Errorf("deletionPolicy Retain: record %s = %+v", keptRecord, rec)
	}
	stopPod(t, ctx, nodeA, pod)
}

// Scenario 5: the source PVC is deleted (its class deletes the directory)
// while its snapshot exists; the snapshot still restores.
func TestSnapshotOutlivesSource(t *testing.T) {
	ctx := snapshotContext(t)
	ns := namespace(t, ctx, bed, "snap-orphan")
	pv, pod := withData(t, ctx, ns, "data", snapshotData)
	takeSnapshot(t, ctx, ns, "data-snap", snapshotClass, "data")

	stopPod(t, ctx, nodeA, pod)
	if err := bed.WaitDetached(ctx, pv.Name, nodeA.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	deleteClaim(t, ctx, bed, ns, "data")
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	if isDir(onExport("snap-orphan/data")) {
		t.Fatalf("the source's directory snap-orphan/data is still on the export after its PV went (onDelete=delete)")
	}
	vs, err := bed.GetVolumeSnapshot(ctx, ns, "data-snap")
	if err != nil {
		t.Fatal(err)
	}
	if !vs.Status.ReadyToUse {
		t.Errorf("VolumeSnapshot %s/data-snap is no longer ready after its source went: %+v", ns, vs.Status)
	}

	provision(t, ctx, bed, claimFrom(ns, "restored", "VolumeSnapshot", "data-snap"))
	reader := runPod(t, ctx, nodeB, ns, "restored-reader", "restored")
	checkFiles(t, "restored from a snapshot whose source is gone", reader.Mounts["restored"], snapshotData)
	stopPod(t, ctx, nodeB, reader)
}
