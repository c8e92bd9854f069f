package driver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
)

func snapReq(name, source string) *csi.CreateSnapshotRequest {
	return &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: source}
}

func fromSnapshot(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func fromVolume(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

func (e *env) createFrom(t *testing.T, name string, src *csi.VolumeContentSource) (*csi.CreateVolumeResponse, error) {
	t.Helper()
	req := createReq(name, baseParams())
	req.VolumeContentSource = src
	return e.d.CreateVolume(context.Background(), req)
}

func (e *env) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(e.exportPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSnapshotRestoreAndClone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src := e.create(t, "src", baseParams())
	e.writeExport(t, "src/data.txt", "before")
	e.writeExport(t, "src/sub/deep.txt", "deep")

	resp, err := e.d.CreateSnapshot(ctx, snapReq("snap-1", src.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	snap := resp.GetSnapshot()
	if !snap.ReadyToUse || snap.SizeBytes != int64(len("before")+len("deep")) || snap.SourceVolumeId != src.VolumeId || snap.CreationTime.AsTime().IsZero() {
		t.Errorf("snapshot %+v", snap)
	}
	parsed, err := nfs.ParseSnapshotID(snap.SnapshotId)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(parsed.DataDir(), nfs.SnapshotDir+"/") {
		t.Errorf("snapshot data in %s, outside %s", parsed.DataDir(), nfs.SnapshotDir)
	}
	e.writeExport(t, "src/data.txt", "after")

	again, err := e.d.CreateSnapshot(ctx, snapReq("snap-1", src.VolumeId))
	if err != nil || again.GetSnapshot().SnapshotId != snap.SnapshotId || !again.GetSnapshot().ReadyToUse {
		t.Errorf("retry of CreateSnapshot: %+v, %v", again, err)
	}
	other := e.create(t, "other", baseParams())
	_, err = e.d.CreateSnapshot(ctx, snapReq("snap-1", other.VolumeId))
	wantCode(t, err, codes.AlreadyExists)
	wantMessageContains(t, err, "snap-1", src.VolumeId)

	restored, err := e.createFrom(t, "restored", fromSnapshot(snap.SnapshotId))
	if err != nil {
		t.Fatal(err)
	}
	if restored.GetVolume().GetContentSource().GetSnapshot().GetSnapshotId() != snap.SnapshotId {
		t.Errorf("restored volume's content source: %v", restored.GetVolume().GetContentSource())
	}
	if got := e.read(t, "restored/data.txt"); got != "before" {
		t.Errorf("restored data %q, want the data from before the snapshot", got)
	}
	if got := e.read(t, "restored/sub/deep.txt"); got != "deep" {
		t.Errorf("restored deep data %q", got)
	}
	if _, err := e.createFrom(t, "restored", fromSnapshot(snap.SnapshotId)); err != nil {
		t.Errorf("retry of the restore: %v", err)
	}
	_, err = e.createFrom(t, "restored", fromVolume(src.VolumeId))
	wantCode(t, err, codes.AlreadyExists)

	clone, err := e.createFrom(t, "clone", fromVolume(src.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, "clone/data.txt"); got != "after" {
		t.Errorf("clone data %q, want the source's", got)
	}
	e.writeExport(t, "clone/data.txt", "changed in the clone")
	if got := e.read(t, "src/data.txt"); got != "after" {
		t.Errorf("writing to the clone changed the source: %q", got)
	}

	// The source goes; its snapshot still restores.
	if _, err := e.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: src.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if exists(e.exportPath("src")) {
		t.Fatal("the source was not deleted")
	}
	restored2, err := e.createFrom(t, "restored-2", fromSnapshot(snap.SnapshotId))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, "restored-2/data.txt"); got != "before" {
		t.Errorf("restore after the source was deleted: %q", got)
	}

	if _, err := e.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(e.exportPath(nfs.SnapshotDir)); len(entries) != 0 {
		t.Errorf("left in %s after DeleteSnapshot: %v", nfs.SnapshotDir, entries)
	}
	if _, err := e.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.SnapshotId}); err != nil {
		t.Errorf("second DeleteSnapshot: %v", err)
	}
	_, err = e.createFrom(t, "restored-3", fromSnapshot(snap.SnapshotId))
	wantCode(t, err, codes.NotFound)
	if exists(e.exportPath("restored-3")) {
		t.Error("a restore from a deleted snapshot made a directory")
	}

	// Restores and clones take their fill markers with them: their records
	// say they were filled, as an ordinary volume's delete no longer looks.
	for _, v := range []*csi.CreateVolumeResponse{restored, restored2, clone} {
		if _, err := e.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolume().GetVolumeId()}); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(e.exportPath(nfs.RecordDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if strings.HasPrefix(entry.Name(), "fill-") {
			t.Errorf("fill marker %s left in %s after the filled volumes were deleted", entry.Name(), nfs.RecordDir)
		}
	}
}

func TestListSnapshots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	var sources []string
	for _, n := range []string{"a", "b", "c"} {
		v := e.create(t, "vol-"+n, baseParams())
		r, err := e.d.CreateSnapshot(ctx, snapReq("snap-"+n, v.VolumeId))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetSnapshot().SnapshotId)
		sources = append(sources, v.VolumeId)
	}
	list := func(req *csi.ListSnapshotsRequest) []string {
		t.Helper()
		resp, err := e.d.ListSnapshots(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range resp.Entries {
			out = append(out, en.GetSnapshot().SnapshotId)
		}
		return out
	}
	if got := list(&csi.ListSnapshotsRequest{}); len(got) != 3 {
		t.Errorf("all: %v", got)
	}
	if got := list(&csi.ListSnapshotsRequest{SnapshotId: ids[1]}); !sameStrings(got, ids[1:2]) {
		t.Errorf("by ID: %v", got)
	}
	if got := list(&csi.ListSnapshotsRequest{SourceVolumeId: sources[2]}); !sameStrings(got, ids[2:3]) {
		t.Errorf("by source: %v", got)
	}
	for _, req := range []*csi.ListSnapshotsRequest{
		{SnapshotId: "none-exist-id"},
		{SourceVolumeId: "none-exist-id"},
		{SnapshotId: nfs.Snapshot{Server: testServer, Share: testShare, Name: "nope"}.ID()},
		{SourceVolumeId: volumeIDFor("nope", nfs.OnDeleteDelete)},
	} {
		if got := list(req); len(got) != 0 {
			t.Errorf("%v: %v, want nothing", req, got)
		}
	}
	resp, err := e.d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: 2})
	if err != nil || len(resp.Entries) != 2 || resp.NextToken == "" {
		t.Fatalf("first page: %v, %v", resp, err)
	}
	rest := list(&csi.ListSnapshotsRequest{StartingToken: resp.NextToken})
	if len(rest) != 1 || rest[0] == resp.Entries[0].GetSnapshot().SnapshotId || rest[0] == resp.Entries[1].GetSnapshot().SnapshotId {
		t.Errorf("second page %v after %v", rest, resp.Entries)
	}
	for _, tok := range []string{"x", "-1", "4"} {
		_, err := e.d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{StartingToken: tok})
		wantCode(t, err, codes.Aborted)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol := e.create(t, "vol", baseParams())
	e.mkdirExport(t, "static")
	for _, tc := range []struct {
		name string
		req  *csi.CreateSnapshotRequest
		code codes.Code
		msg  []string
	}{
		{"no name", snapReq("", vol.VolumeId), codes.InvalidArgument, []string{"name is required"}},
		{"no source", snapReq("s", ""), codes.InvalidArgument, []string{"source volume ID is required"}},
		{"name with a control character", snapReq("a\nb", vol.VolumeId), codes.InvalidArgument, []string{"control character"}},
		{"unknown parameter", &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: vol.VolumeId, Parameters: map[string]string{"colour": "blue"}}, codes.InvalidArgument, []string{`"colour"`}},
		{"bad copy method", &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: vol.VolumeId, Parameters: map[string]string{"copyMethod": "tar"}}, codes.InvalidArgument, []string{"tar"}},
		{"source not ours", snapReq("s", "fake-vol-id"), codes.NotFound, []string{"fake-vol-id"}},
		{"source a directory with no record", snapReq("s", volumeIDFor("static", nfs.OnDeleteRetain)), codes.NotFound, []string{"static", "no creation record"}},
		{"source the share root", snapReq("s", volumeIDFor("", nfs.OnDeleteRetain)), codes.NotFound, []string{"share root"}},
		{"source the metadata area", snapReq("s", volumeIDFor(".nfs-csi/volumes", nfs.OnDeleteDelete)), codes.NotFound, []string{".nfs-csi"}},
		{"source with ..", snapReq("s", "v1#delete#10.0.0.1#/export#..#"), codes.NotFound, []string{`".."`}},
		{"source volume ID edited", snapReq("s", volumeIDFor("vol", nfs.OnDeleteRetain)), codes.NotFound, []string{"no creation record"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.CreateSnapshot(ctx, tc.req)
			wantCode(t, err, tc.code)
			wantMessageContains(t, err, tc.msg...)
		})
	}
	// Refusals write nothing, not even the snapshots directory (it used to
	// be created before the source was checked).
	if exists(e.exportPath(nfs.SnapshotDir)) {
		t.Errorf("refused snapshots made %s", nfs.SnapshotDir)
	}
	_, err := e.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{})
	wantCode(t, err, codes.InvalidArgument)
	if _, err := e.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "reallyfakesnapshotid"}); err != nil {
		t.Errorf("DeleteSnapshot of a foreign ID: %v", err)
	}

	if _, err := e.d.CreateSnapshot(ctx, snapReq("s", vol.VolumeId)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  *csi.VolumeContentSource
		code codes.Code
		msg  []string
	}{
		{"snapshot not ours", fromSnapshot("non-existing-snapshot-id"), codes.NotFound, []string{"non-existing-snapshot-id"}},
		{"snapshot that was never taken", fromSnapshot(nfs.Snapshot{Server: testServer, Share: testShare, Name: "never"}.ID()), codes.NotFound, []string{"does not exist"}},
		{"snapshot ID of another mount option set", fromSnapshot(nfs.Snapshot{Server: testServer, Share: testShare, Name: "s", MountOptions: []string{"vers=3"}}.ID()), codes.NotFound, []string{"does not exist"}},
		{"volume not found", fromVolume(volumeIDFor("missing", nfs.OnDeleteDelete)), codes.NotFound, []string{"missing"}},
		{"volume the share root", fromVolume(volumeIDFor("", nfs.OnDeleteRetain)), codes.NotFound, []string{"share root"}},
		{"volume a snapshot's directory", fromVolume(volumeIDFor(nfs.SnapshotDir+"/x", nfs.OnDeleteRetain)), codes.NotFound, []string{".nfs-csi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.createFrom(t, "new", tc.src)
			wantCode(t, err, tc.code)
			wantMessageContains(t, err, tc.msg...)
			if exists(e.exportPath("new")) {
				t.Error("a refused CreateVolume made the directory")
			}
		})
	}
	req := createReq("small", baseParams())
	req.CapacityRange = &csi.CapacityRange{RequiredBytes: 1}
	req.VolumeContentSource = fromVolume(vol.VolumeId)
	_, err = e.d.CreateVolume(ctx, req)
	wantCode(t, err, codes.OutOfRange)
	wantMessageContains(t, err, vol.VolumeId, "at least")
}

// TestSnapshotCopyOutlastsTheCall holds a copy so that it outlasts
// CreateSnapshot: the call answers ready_to_use false without holding the
// source volume's lock, and a later call reports it ready.
func TestSnapshotCopyOutlastsTheCall(t *testing.T) {
	e := newEnv(t)
	vol := e.create(t, "vol", baseParams())
	e.writeExport(t, "vol/f", "data")
	release := make(chan struct{})
	e.d.copies.beforeCopy = func(string) { <-release }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	resp, err := e.d.CreateSnapshot(ctx, snapReq("slow", vol.VolumeId))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSnapshot().ReadyToUse {
		t.Fatal("a snapshot whose copy is still running was reported ready")
	}
	// The source's lock is free: DeleteVolume gets it, and refuses because
	// the copy reads the volume.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = e.d.DeleteVolume(dctx, &csi.DeleteVolumeRequest{VolumeId: vol.VolumeId})
	dcancel()
	wantCode(t, err, codes.Aborted)
	wantMessageContains(t, err, "being copied", resp.GetSnapshot().SnapshotId)
	list, err := e.d.ListSnapshots(context.Background(), &csi.ListSnapshotsRequest{SnapshotId: resp.GetSnapshot().SnapshotId})
	if err != nil || len(list.Entries) != 1 || list.Entries[0].GetSnapshot().ReadyToUse {
		t.Errorf("ListSnapshots during the copy: %v, %v", list, err)
	}
	close(release)
	resp, err = e.d.CreateSnapshot(context.Background(), snapReq("slow", vol.VolumeId))
	if err != nil || !resp.GetSnapshot().ReadyToUse || resp.GetSnapshot().SizeBytes != 4 {
		t.Fatalf("CreateSnapshot after the copy: %v, %v", resp, err)
	}
}

// TestCopiesRestartAfterACrash plants what a controller killed mid-copy
// leaves: a snapshot record that is not ready with part of a copy, and a
// volume whose fill marker says "copying" with part of its data. The next
// calls start both copies again from scratch.
func TestCopiesRestartAfterACrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol := e.create(t, "vol", baseParams())
	e.writeExport(t, "vol/f", "complete")
	snap := nfs.SnapshotOf(nfs.Volume{Server: testServer, Share: testShare, SubDir: "vol", OnDelete: nfs.OnDeleteDelete}, "crashed")
	e.mkdirExport(t, nfs.SnapshotDir)
	rec := nfs.SnapshotRecord{Version: 1, Name: snap.Name, ID: snap.ID(), SourceVolumeID: vol.VolumeId, Created: time.Now().UnixNano()}
	writeJSON(t, e.exportPath(nfs.SnapshotDir+"/"+snap.Key()+".json"), rec)
	e.writeExport(t, snap.DataDir()+"/f", "parti")
	e.writeExport(t, snap.DataDir()+"/junk", "from the crashed copy")

	list, err := e.d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: snap.ID()})
	if err != nil || len(list.Entries) != 1 || list.Entries[0].GetSnapshot().ReadyToUse {
		t.Fatalf("the interrupted snapshot is listed as %v, %v; want not ready", list, err)
	}
	resp, err := e.d.CreateSnapshot(ctx, snapReq("crashed", vol.VolumeId))
	if err != nil || !resp.GetSnapshot().ReadyToUse {
		t.Fatalf("CreateSnapshot after the crash: %v, %v", resp, err)
	}
	if got := e.read(t, snap.DataDir()+"/f"); got != "complete" {
		t.Errorf("snapshot data %q", got)
	}
	if exists(e.exportPath(snap.DataDir() + "/junk")) {
		t.Error("the crashed copy's leftovers are in the snapshot")
	}

	// A restore killed mid-copy: marker, record and directory exist.
	if _, err := e.createFrom(t, "restored", fromSnapshot(snap.ID())); err != nil {
		t.Fatal(err)
	}
	marker := ""
	entries, _ := os.ReadDir(e.exportPath(nfs.RecordDir))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "fill-") {
			marker = filepath.Join(e.exportPath(nfs.RecordDir), en.Name())
		}
	}
	if marker == "" {
		t.Fatal("no fill marker")
	}
	_ = os.Remove(marker)
	if err := os.Symlink("copying "+snap.ID(), marker); err != nil {
		t.Fatal(err)
	}
	e.writeExport(t, "restored/f", "parti")
	e.writeExport(t, "restored/junk", "from the crashed copy")
	if _, err := e.createFrom(t, "restored", fromSnapshot(snap.ID())); err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, "restored/f"); got != "complete" {
		t.Errorf("restored data %q", got)
	}
	if exists(e.exportPath("restored/junk")) {
		t.Error("the crashed fill's leftovers are in the volume")
	}
	if target, _ := os.Readlink(marker); !strings.HasPrefix(target, "done ") {
		t.Errorf("fill marker %q after the fill", target)
	}
}

func writeJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotOfAnotherCluster plants the record of a snapshot another
// cluster's controller took (the same ID: a VolumeSnapshotContent copied
// between clusters): this controller neither deletes, lists, restores nor
// reuses it.
func TestSnapshotOfAnotherCluster(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol := e.create(t, "vol", baseParams())
	resp, err := e.d.CreateSnapshot(ctx, snapReq("theirs", vol.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := nfs.ParseSnapshotID(resp.GetSnapshot().SnapshotId)
	recPath := e.exportPath(nfs.SnapshotDir + "/" + snap.Key() + ".json")
	b, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec nfs.SnapshotRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec.ClusterID = "other-cluster"
	writeJSON(t, recPath, rec)

	_, err = e.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.ID()})
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, "other-cluster", snap.ID())
	if !exists(e.exportPath(snap.DataDir())) {
		t.Fatal("a refused DeleteSnapshot removed the copy")
	}
	list, err := e.d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: snap.ID()})
	if err != nil || len(list.Entries) != 0 {
		t.Errorf("ListSnapshots lists another cluster's snapshot: %v, %v", list, err)
	}
	_, err = e.createFrom(t, "restored", fromSnapshot(snap.ID()))
	wantCode(t, err, codes.NotFound)
	wantMessageContains(t, err, "other-cluster")
	_, err = e.d.CreateSnapshot(ctx, snapReq("theirs", vol.VolumeId))
	wantCode(t, err, codes.AlreadyExists)
}

// TestListSnapshotsIgnoresSharesWithoutSnapshots: a CreateSnapshot whose
// source names a server the controller cannot mount used to add that share
// to the unfiltered listing, and every ListSnapshots failed afterwards.
func TestListSnapshotsIgnoresSharesWithoutSnapshots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bogus := nfs.Volume{Server: "10.9.9.9", Share: "/nowhere", SubDir: "x", OnDelete: nfs.OnDeleteDelete}.ID()
	if _, err := e.d.CreateSnapshot(ctx, snapReq("s", bogus)); err == nil {
		t.Fatal("CreateSnapshot of a volume on an unknown server succeeded")
	}
	vol := e.create(t, "vol", baseParams())
	if _, err := e.d.CreateSnapshot(ctx, snapReq("real", vol.VolumeId)); err != nil {
		t.Fatal(err)
	}
	list, err := e.d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if err != nil || len(list.Entries) != 1 {
		t.Errorf("ListSnapshots: %v, %v; want the one snapshot", list, err)
	}
}
