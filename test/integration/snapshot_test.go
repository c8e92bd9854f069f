//go:build uml

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

// snapshotVersions adds NFSv4.2, the only version with CLONE and COPY.
func snapshotVersions(t *testing.T) []nfsVersion {
	return append(versions(t), nfsVersion{"nfs4.2", "4.2", os.Getenv("NFS_SHARE_V4")})
}

// opCounts reads the per-operation counts of the NFS mounts below dir from
// /proc/self/mountstats: op name -> calls, summed.
func opCounts(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/mountstats")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int64{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "device ") {
			fields := strings.Fields(line)
			in = len(fields) > 4 && strings.HasPrefix(fields[4], dir)
			continue
		}
		if !in {
			continue
		}
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.ToUpper(name) != name || strings.Contains(name, " ") {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[name] += n
			}
		}
	}
	return out
}

func (e *env) snapshot(name, source string) *csi.Snapshot {
	e.t.Helper()
	for {
		resp, err := e.ctrl.CreateSnapshot(e.ctx(), &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: source})
		if err != nil {
			e.t.Fatalf("CreateSnapshot %s of %s: %v", name, source, err)
		}
		if resp.GetSnapshot().GetReadyToUse() {
			return resp.GetSnapshot()
		}
		time.Sleep(time.Second)
	}
}

func (e *env) createFrom(name string, src *csi.VolumeContentSource) (*csi.Volume, error) {
	e.t.Helper()
	for {
		resp, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
			Name: name, Parameters: e.params(nil), VolumeCapabilities: []*csi.VolumeCapability{rwo}, VolumeContentSource: src,
		})
		if codeOf(err) == codes.Aborted {
			time.Sleep(time.Second)
			continue
		}
		return resp.GetVolume(), err
	}
}

func snapshotSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func volumeSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

func snapshotRecord(t *testing.T, id string) nfs.SnapshotRecord {
	t.Helper()
	s, err := nfs.ParseSnapshotID(id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(exportDir(), nfs.SnapshotDir, s.Key()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec nfs.SnapshotRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// writeTree puts a small tree with a 4 MiB file, a sparse file, a hard link
// and symlinks into a volume's directory on the export.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "small.txt"), "before")
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("nfs-csi!"), 512<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt([]byte("end"), 32<<20)
	f.Close()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "small.txt"), filepath.Join(dir, "sub/hard")); err != nil {
		t.Fatal(err)
	}
	for target, link := range map[string]string{"/etc/shadow": "abs", "../../..": "up", "small.txt": "rel"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotCopyPaths takes a snapshot, restores it and clones a volume
// over each NFS version, and checks which copy method the server allowed:
// on XFS over NFSv4.2 a CLONE (the client's CLONE counter moves), on tmpfs
// over NFSv4.2 a server-side COPY, elsewhere never a clone. The data, holes,
// hard links and symlinks arrive intact every time.
func TestSnapshotCopyPaths(t *testing.T) {
	fsType := os.Getenv("NFS_EXPORT_FS")
	for _, v := range snapshotVersions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			src := e.create("snap-src-"+v.name, nil)
			srcDir := filepath.Join(exportDir(), "snap-src-"+v.name)
			writeTree(t, srcDir)
			before := treeSnapshot(t, srcDir)
			shares := filepath.Join(e.dir, "work", "shares")
			ops0 := opCounts(t, shares)
			snap := e.snapshot("snap-"+v.name, src.GetVolumeId())
			ops := opCounts(t, shares)
			rec := snapshotRecord(t, snap.GetSnapshotId())
			t.Logf("%s on %s: method %s, CLONE %d, COPY %d", v.name, fsType, rec.Method, ops["CLONE"]-ops0["CLONE"], ops["COPY"]-ops0["COPY"])
			switch {
			case v.vers == "4.2" && fsType == "xfs":
				if rec.Method != nfs.CopyClone || ops["CLONE"] <= ops0["CLONE"] {
					t.Errorf("XFS over NFSv4.2: method %s and %d CLONE calls, want clone", rec.Method, ops["CLONE"]-ops0["CLONE"])
				}
			case v.vers == "4.2":
				if rec.Method != nfs.CopyRange || ops["COPY"] <= ops0["COPY"] {
					t.Errorf("tmpfs over NFSv4.2: method %s and %d COPY calls, want a server-side copy_file_range", rec.Method, ops["COPY"]-ops0["COPY"])
				}
			default:
				if rec.Method == nfs.CopyClone {
					t.Errorf("NFSv%s reported a clone", v.vers)
				}
			}
			if want := int64(len("before") + 4<<20 + 32<<20 + 3); snap.GetSizeBytes() != want {
				t.Errorf("size_bytes %d, want %d", snap.GetSizeBytes(), want)
			}
			mustWrite(t, filepath.Join(srcDir, "small.txt"), "after, longer")

			restored, err := e.createFrom("snap-restored-"+v.name, snapshotSource(snap.GetSnapshotId()))
			if err != nil {
				t.Fatal(err)
			}
			restoredDir := filepath.Join(exportDir(), "snap-restored-"+v.name)
			if got := treeSnapshot(t, restoredDir); !equalStrings(got, before) {
				t.Errorf("restored tree differs from the tree at snapshot time:\n got %v\nwant %v", got, before)
			}
			if statOf(t, filepath.Join(restoredDir, "small.txt")).Ino != statOf(t, filepath.Join(restoredDir, "sub/hard")).Ino {
				t.Error("the hard link became two files")
			}
			if sp := statOf(t, filepath.Join(restoredDir, "sparse")); sp.Blocks*512 > 4<<20 {
				t.Errorf("the sparse file's holes were filled: %d bytes allocated", sp.Blocks*512)
			}
			clone, err := e.createFrom("snap-clone-"+v.name, volumeSource(src.GetVolumeId()))
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(exportDir(), "snap-clone-"+v.name, "small.txt")); string(b) != "after, longer" {
				t.Errorf("clone has %q, want the source's current data", b)
			}
			for _, id := range []string{restored.GetVolumeId(), clone.GetVolumeId(), src.GetVolumeId()} {
				e.delete(id)
			}
			if _, err := e.ctrl.DeleteSnapshot(e.ctx(), &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshotId()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSnapshotOutlivesItsSource deletes the source volume and restores its
// snapshot afterwards.
func TestSnapshotOutlivesItsSource(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			src := e.create("outlive-src-"+v.name, nil)
			mustWrite(t, filepath.Join(exportDir(), "outlive-src-"+v.name, "f"), "kept")
			snap := e.snapshot("outlive-"+v.name, src.GetVolumeId())
			e.delete(src.GetVolumeId())
			if _, err := os.Stat(filepath.Join(exportDir(), "outlive-src-"+v.name)); !os.IsNotExist(err) {
				t.Fatalf("source still there: %v", err)
			}
			vol, err := e.createFrom("outlive-restored-"+v.name, snapshotSource(snap.GetSnapshotId()))
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(exportDir(), "outlive-restored-"+v.name, "f")); string(b) != "kept" {
				t.Errorf("restored %q", b)
			}
			e.delete(vol.GetVolumeId())
			if _, err := e.ctrl.DeleteSnapshot(e.ctx(), &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshotId()}); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(filepath.Join(exportDir(), nfs.SnapshotDir)); len(entries) != 0 {
				t.Errorf("left in %s: %v", nfs.SnapshotDir, entries)
			}
		})
	}
}

// TestSnapshotCrashMidCopy leaves on the real export what a controller
// killed in the middle of a snapshot copy leaves (a record that is not
// ready and part of the copy), and starts a new driver: the snapshot is
// listed as not ready, and the next CreateSnapshot copies it again from
// scratch.
func TestSnapshotCrashMidCopy(t *testing.T) {
	v := versions(t)[1]
	e := startDriver(t, v)
	src := e.create("crash-src", nil)
	mustWrite(t, filepath.Join(exportDir(), "crash-src", "f"), "complete data")
	vol, _ := nfs.ParseVolumeID(src.GetVolumeId())
	snap := nfs.SnapshotOf(vol, "crash-snap")
	rec := nfs.SnapshotRecord{Version: 1, Name: snap.Name, ID: snap.ID(), SourceVolumeID: src.GetVolumeId(), Created: time.Now().UnixNano()}
	b, _ := json.Marshal(rec)
	dataDir := filepath.Join(exportDir(), snap.DataDir())
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(exportDir(), nfs.SnapshotDir, snap.Key()+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dataDir, "f"), "compl")
	mustWrite(t, filepath.Join(dataDir, "junk"), "of the killed copy")

	list, err := e.ctrl.ListSnapshots(e.ctx(), &csi.ListSnapshotsRequest{SnapshotId: snap.ID()})
	if err != nil || len(list.GetEntries()) != 1 || list.GetEntries()[0].GetSnapshot().GetReadyToUse() {
		t.Fatalf("ListSnapshots of the interrupted snapshot: %v, %v; want one entry, not ready", list, err)
	}
	got := e.snapshot("crash-snap", src.GetVolumeId())
	if got.GetSnapshotId() != snap.ID() || got.GetSizeBytes() != int64(len("complete data")) {
		t.Errorf("snapshot after the crash: %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, "f")); string(b) != "complete data" {
		t.Errorf("snapshot data %q", b)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "junk")); !os.IsNotExist(err) {
		t.Errorf("the killed copy's file survived: %v", err)
	}
	if _, err := e.ctrl.DeleteSnapshot(e.ctx(), &csi.DeleteSnapshotRequest{SnapshotId: snap.ID()}); err != nil {
		t.Fatal(err)
	}
	e.delete(src.GetVolumeId())
}

// TestSnapshotForgedSources sends forged snapshot and source IDs: each is
// refused with its code, and the export is byte for byte unchanged.
func TestSnapshotForgedSources(t *testing.T) {
	v := versions(t)[0]
	e := startDriver(t, v)
	victim := e.create("forged-victim", nil)
	mustWrite(t, filepath.Join(exportDir(), "forged-victim", "secret"), "another tenant's")
	if err := os.MkdirAll(filepath.Join(exportDir(), "static-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	server := os.Getenv("NFS_SERVER")
	vid := func(sub string) string {
		return "v1#delete#" + server + "#" + v.share + "#" + sub + "#vers=" + v.vers
	}
	before := treeSnapshot(t, exportDir())
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"snapshot of ..", func() error { return snapshotErr(e, "f1", vid("..")) }, codes.NotFound},
		{"snapshot of the share root", func() error { return snapshotErr(e, "f2", vid("")) }, codes.NotFound},
		{"snapshot of .", func() error { return snapshotErr(e, "f3", vid(".")) }, codes.NotFound},
		{"snapshot of the metadata area", func() error { return snapshotErr(e, "f4", vid(".nfs-csi")) }, codes.NotFound},
		{"snapshot of a directory without a record", func() error { return snapshotErr(e, "f5", vid("static-dir")) }, codes.NotFound},
		{"snapshot of an edited volume ID", func() error {
			return snapshotErr(e, "f6", strings.Replace(victim.GetVolumeId(), "#delete#", "#retain#", 1))
		}, codes.NotFound},
		{"restore of a snapshot ID with a bad escape", func() error {
			_, err := e.createFrom("forged-1", snapshotSource("s1#"+server+"#"+v.share+"#%2F..#"))
			return err
		}, codes.NotFound},
		{"restore of the metadata area as a snapshot name", func() error {
			_, err := e.createFrom("forged-1b", snapshotSource(nfs.Snapshot{Server: server, Share: v.share, Name: "../volumes"}.ID()))
			return err
		}, codes.NotFound},
		{"restore of a snapshot never taken", func() error {
			_, err := e.createFrom("forged-2", snapshotSource(nfs.Snapshot{Server: server, Share: v.share, Name: "never"}.ID()))
			return err
		}, codes.NotFound},
		{"restore from another server", func() error {
			_, err := e.createFrom("forged-3", snapshotSource(nfs.Snapshot{Server: "10.9.9.9", Share: v.share, Name: "x"}.ID()))
			return err
		}, codes.InvalidArgument},
		{"clone of the share root", func() error { _, err := e.createFrom("forged-4", volumeSource(vid(""))); return err }, codes.NotFound},
		{"clone of a directory without a record", func() error {
			_, err := e.createFrom("forged-5", volumeSource(vid("static-dir")))
			return err
		}, codes.NotFound},
		{"clone of a snapshot's directory as a volume", func() error {
			_, err := e.createFrom("forged-6", volumeSource(vid(nfs.SnapshotDir)))
			return err
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), tc.code)
		})
	}
	after := treeSnapshot(t, exportDir())
	if !equalStrings(before, after) {
		t.Errorf("forged requests changed the export:\nbefore %v\nafter  %v", before, after)
	}
	e.delete(victim.GetVolumeId())
}

func snapshotErr(e *env, name, source string) error {
	_, err := e.ctrl.CreateSnapshot(e.ctx(), &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: source})
	return err
}

func codeOf(err error) codes.Code { return status.Code(err) }

func statOf(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }
