package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
	"github.com/example/nfs-csi/test/umlbed"
)

// copyResult is the snapshot, restore and clone rows of one export (issue
// 10), over NFSv4.2, each driver figure beside the bare copies of the same
// tree on the same mount.
type copyResult struct {
	Export     string `json:"export"` // tmpfs or xfs
	NFSVersion string `json:"nfsVersion"`
	Files      int    `json:"files"`
	MiB        int    `json:"mib"`
	// SnapshotMethod is the copy method the snapshot's record names
	// (clone, copy_file_range or read-write).
	SnapshotMethod string  `json:"snapshotMethod"`
	SnapshotS      float64 `json:"createSnapshotSeconds"`
	RestoreS       float64 `json:"restoreSeconds"`
	CloneS         float64 `json:"cloneSeconds"`
	// BareReflinkS is 0 when cp --reflink=always could not reflink
	// (tmpfs), and BareReflinkError says why.
	BareReflinkS     float64 `json:"bareCpReflinkAlwaysSeconds"`
	BareReflinkError string  `json:"bareCpReflinkAlwaysError,omitempty"`
	BareCopyS        float64 `json:"bareCpReflinkNeverSeconds"`
	TarCzfS          float64 `json:"bareTarCzfSeconds"`
	TarXzfS          float64 `json:"bareTarXzfSeconds"`
	// Slowdowns of the driver against a bare copy (lower is better), and
	// speedups against the tarball path (higher is better); 0 when the
	// floor could not be measured.
	SnapshotVsReflink float64 `json:"snapshotSlowdownVsReflinkCopy"`
	RestoreVsReflink  float64 `json:"restoreSlowdownVsReflinkCopy"`
	CloneVsReflink    float64 `json:"cloneSlowdownVsReflinkCopy"`
	SnapshotVsCopy    float64 `json:"snapshotSlowdownVsCopy"`
	RestoreVsCopy     float64 `json:"restoreSlowdownVsCopy"`
	CloneVsCopy       float64 `json:"cloneSlowdownVsCopy"`
	SnapshotVsTarCzf  float64 `json:"snapshotSpeedupVsTarCzf"`
	RestoreVsTarXzf   float64 `json:"restoreSpeedupVsTarXzf"`
}

// copyExport is a share the copy rows run on: how the driver names it and
// where the bench reaches the same directory on the server's side.
type copyExport struct {
	name, server, share, local string
}

// copyRows measures the driver's CreateSnapshot (until ready_to_use), the
// restore (CreateVolume from the snapshot) and the clone (CreateVolume from
// the volume) of a volume of files incompressible files, mib MiB in all,
// against cp -a --reflink=always, cp -a --reflink=never and tar czf + tar
// xzf of the same tree between two directories of one NFSv4.2 mount.
// The floors run first, each from cold caches, and each copy is removed
// before the next, so that the export holds at most three copies at once.
func copyRows(p *driverProc, x copyExport, work string, files, mib int) copyResult {
	const vers = "4.2"
	r := copyResult{Export: x.name, NFSVersion: vers, Files: files, MiB: mib}
	ctrl := csi.NewControllerClient(p.conn)
	ctx := context.Background()
	params := map[string]string{"server": x.server, "share": x.share, "mountOptions": "vers=" + vers}

	src := createVolume(ctx, ctrl, &csi.CreateVolumeRequest{Name: "bench-copy-src-" + x.name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability}})
	subDir := src.GetVolumeContext()["subDir"]
	if subDir == "" {
		fail(fmt.Sprintf("the source volume %s on %s has no subDir in its volume context", src.GetVolumeId(), x.name))
	}
	t0 := time.Now()
	check(writeRandomTree(filepath.Join(x.local, subDir), files, int64(mib)<<20, 1), "write the source tree of "+src.GetVolumeId())
	fmt.Fprintf(os.Stderr, "bench: %s: %d files, %d MiB written on the server in %.1f s\n", x.name, files, mib, time.Since(t0).Seconds())

	mnt := filepath.Join(work, "copy-"+x.name)
	check(os.MkdirAll(mnt, 0o755), "mkdir")
	check(mountNFS(x.server+":"+x.share, mnt, "vers="+vers), "mount "+x.share)
	defer func() {
		// Measured by now: a mount left behind is only reported.
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: umount %s: %v: %s\n", mnt, err, firstLine(out))
		}
	}()
	srcDir := filepath.Join(mnt, subDir)

	f, err := measureFloors(srcDir, mnt)
	check(err, x.name)
	r.BareReflinkS, r.BareReflinkError, r.BareCopyS, r.TarCzfS, r.TarXzfS = f.reflinkS, f.reflinkError, f.copyS, f.tarCzfS, f.tarXzfS

	dropCaches()
	t0 = time.Now()
	snap := createSnapshot(ctx, ctrl, "bench-snap-"+x.name, src.GetVolumeId())
	r.SnapshotS = time.Since(t0).Seconds()
	r.SnapshotMethod = snapshotMethod(x.local, snap.GetSnapshotId())

	dropCaches()
	t0 = time.Now()
	restored := createVolume(ctx, ctrl, &csi.CreateVolumeRequest{Name: "bench-restore-" + x.name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshotId()}}}})
	r.RestoreS = time.Since(t0).Seconds()
	deleteVolume(ctx, ctrl, restored.GetVolumeId(), nil)

	dropCaches()
	t0 = time.Now()
	clone := createVolume(ctx, ctrl, &csi.CreateVolumeRequest{Name: "bench-clone-" + x.name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.GetVolumeId()}}}})
	r.CloneS = time.Since(t0).Seconds()
	deleteVolume(ctx, ctrl, clone.GetVolumeId(), nil)

	retried("DeleteSnapshot "+snap.GetSnapshotId(), func() error {
		_, err := ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshotId()})
		return err
	})
	deleteVolume(ctx, ctrl, src.GetVolumeId(), nil)

	r.SnapshotVsReflink, r.RestoreVsReflink, r.CloneVsReflink = ratio(r.SnapshotS, r.BareReflinkS), ratio(r.RestoreS, r.BareReflinkS), ratio(r.CloneS, r.BareReflinkS)
	r.SnapshotVsCopy, r.RestoreVsCopy, r.CloneVsCopy = ratio(r.SnapshotS, r.BareCopyS), ratio(r.RestoreS, r.BareCopyS), ratio(r.CloneS, r.BareCopyS)
	r.SnapshotVsTarCzf, r.RestoreVsTarXzf = ratio(r.TarCzfS, r.SnapshotS), ratio(r.TarXzfS, r.RestoreS)
	return r
}

// floors are the bare copies of a tree, in seconds.
type floors struct {
	reflinkS, copyS, tarCzfS, tarXzfS float64
	reflinkError                      string // why cp --reflink=always failed
}

// measureFloors copies the tree srcDir into new entries of scratch (a
// directory on the same mount) with cp -a --reflink=always, cp -a
// --reflink=never, and tar czf into a file then tar xzf of it, each from
// cold caches, and removes each copy before the next. A file system that
// cannot reflink is no error: reflinkError says why.
func measureFloors(srcDir, scratch string) (floors, error) {
	var f floors
	timed := func(what string, argv ...string) (float64, error) {
		dropCaches()
		t0 := time.Now()
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", what, err, firstLine(out))
		}
		return time.Since(t0).Seconds(), nil
	}
	reflinked := filepath.Join(scratch, "bench-floor-reflink")
	var err error
	if f.reflinkS, err = timed("cp -a --reflink=always", "cp", "-a", "--reflink=always", srcDir, reflinked); err != nil {
		f.reflinkError = err.Error()
	}
	if err := os.RemoveAll(reflinked); err != nil {
		return f, err
	}
	copied := filepath.Join(scratch, "bench-floor-copy")
	if f.copyS, err = timed("cp -a --reflink=never", "cp", "-a", "--reflink=never", srcDir, copied); err != nil {
		return f, err
	}
	if err := os.RemoveAll(copied); err != nil {
		return f, err
	}
	tgz, untarred := filepath.Join(scratch, "bench-floor.tgz"), filepath.Join(scratch, "bench-floor-untar")
	if f.tarCzfS, err = timed("tar czf", "tar", "-czf", tgz, "-C", srcDir, "."); err != nil {
		return f, err
	}
	if err := os.Mkdir(untarred, 0o755); err != nil {
		return f, err
	}
	if f.tarXzfS, err = timed("tar xzf", "tar", "-xzf", tgz, "-C", untarred); err != nil {
		return f, err
	}
	if err := os.RemoveAll(untarred); err != nil {
		return f, err
	}
	return f, os.Remove(tgz)
}

// createSnapshot calls CreateSnapshot, as csi-snapshotter does, until the
// snapshot is ready to use.
func createSnapshot(ctx context.Context, ctrl csi.ControllerClient, name, source string) *csi.Snapshot {
	deadline := time.Now().Add(20 * time.Minute)
	for {
		resp, err := ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: source})
		check(err, "CreateSnapshot "+name+" of "+source)
		if resp.GetSnapshot().GetReadyToUse() {
			return resp.GetSnapshot()
		}
		if time.Now().After(deadline) {
			fail("CreateSnapshot " + name + " of " + source + ": not ready after 20 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createVolume calls CreateVolume, as csi-provisioner does, until it
// succeeds: a volume that is still being filled from its content source
// answers Aborted.
func createVolume(ctx context.Context, ctrl csi.ControllerClient, req *csi.CreateVolumeRequest) *csi.Volume {
	deadline := time.Now().Add(20 * time.Minute)
	for {
		resp, err := ctrl.CreateVolume(ctx, req)
		if err == nil {
			return resp.GetVolume()
		}
		if status.Code(err) != codes.Aborted || time.Now().After(deadline) {
			fail("CreateVolume " + req.GetName() + ": " + err.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deleteVolume calls DeleteVolume with secrets until it succeeds, for up
// to 30 s (retried as csi-provisioner retries it).
func deleteVolume(ctx context.Context, ctrl csi.ControllerClient, id string, secrets map[string]string) {
	retried("DeleteVolume "+id, func() error {
		_, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id, Secrets: secrets})
		return err
	})
}

// retried calls f until it succeeds, for up to 30 s, and fails the bench
// with f's last error.
func retried(what string, f func() error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fail(what + ": " + err.Error())
		}
		time.Sleep(time.Second)
	}
}

// snapshotMethod is the copy method the record of snapshot id below the
// share's directory local names, or why it could not be read.
func snapshotMethod(local, id string) string {
	s, err := nfs.ParseSnapshotID(id)
	if err != nil {
		return "unknown: " + err.Error()
	}
	data, err := os.ReadFile(filepath.Join(local, nfs.SnapshotDir, s.Key()+".json"))
	if err != nil {
		return "unknown: " + err.Error()
	}
	var rec nfs.SnapshotRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return "unknown: " + err.Error()
	}
	return string(rec.Method)
}

// ensureTmpfsRoom grows the harness's tmpfs export (512 MiB) when it has
// less than need bytes free: the copy rows hold three copies of the tree at
// once. The size is a property of the file system, so it is set from the
// server's mount namespace, where the export was mounted.
func ensureTmpfsRoom(dir string, need int64) {
	total, free := statfsBytes(dir)
	if free >= need {
		return
	}
	size := (total - free + need + 256<<20) >> 20
	_, err := umlbed.Run(umlbed.ServerNS("mount", "-o", fmt.Sprintf("remount,size=%dm", size), dir)...)
	check(err, "grow the tmpfs export")
	fmt.Fprintf(os.Stderr, "bench: the tmpfs export %s grown to %d MiB for the copy rows\n", dir, size)
}

// dropCaches empties the guest's page, dentry and inode caches before a
// timed copy, so that every copy starts cold on the client and on the
// server (which share the guest's kernel). Only inside UML: on a host it
// would be the host's caches.
func dropCaches() {
	if !inUML() {
		return
	}
	_ = exec.Command("sync").Run()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

func inUML() bool {
	data, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && strings.Contains(string(data), "User Mode Linux")
}

// ratio is a/b, or 0 when b was not measured.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
