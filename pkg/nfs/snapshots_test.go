package nfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSnapshotIDRoundTrip(t *testing.T) {
	for _, s := range []Snapshot{
		{Server: "10.0.0.5", Share: "/srv/nfs", Name: "snapshot-8d7e5d1c"},
		{Server: "[fd00::5]", Share: "/", Name: "a#b%c/../d", MountOptions: []string{"nfsvers=4.2", "hard"}},
	} {
		id := s.ID()
		got, err := ParseSnapshotID(id)
		if err != nil {
			t.Fatalf("ParseSnapshotID(%q): %v", id, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip of %q: got %#v, want %#v", id, got, s)
		}
		if !strings.HasPrefix(got.DataDir(), SnapshotDir+"/") || strings.Count(got.DataDir(), "/") != 2 {
			t.Errorf("data dir %q of %q is not one entry of %s", got.DataDir(), id, SnapshotDir)
		}
	}
}

func TestParseSnapshotIDRefusesForgeries(t *testing.T) {
	for _, id := range []string{
		"",
		"s1",
		"v1#delete#10.0.0.5#/srv/nfs#pvc-1#", // a volume ID
		"s2#10.0.0.5#/srv/nfs#snap#",
		"s1#10.0.0.5#/srv/nfs##",        // empty name
		"s1#10.0.0.5#/srv/../etc#snap#", // share with ..
		"s1#10.0.0.5#srv#snap#",         // relative share
		"s1#10.0.0.5#/srv/nfs#a\x00b#",  // NUL
		"s1#10.0.0.5#/srv/nfs#snap#a b", // option with a space
		"s1#10.0.0.5#/srv/nfs#snap%2F#", // unknown escape
		"s1#evil/host#/srv/nfs#snap#",   // server with a path
		"s1#10.0.0.5#/srv/nfs#snap##",   // six fields
		"s1#10.0.0.5#/srv/nfs#" + strings.Repeat("n", MaxSnapshotNameLen+1) + "#",
	} {
		if s, err := ParseSnapshotID(id); err == nil {
			t.Errorf("ParseSnapshotID(%q) = %#v, want an error", id, s)
		}
	}
}

func FuzzParseSnapshotID(f *testing.F) {
	for _, s := range []string{
		"s1#10.0.0.1#/srv/nfs#snap-1#",
		"s1#h#/#..#vers=4.2",
		"s1#h#/s%23x#a%25b/c%23d#opt%23",
		"s1#h#/s/..#a#",
		"s1#h#/s#a%2F..%2F..#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		s, err := ParseSnapshotID(id)
		if err != nil {
			return
		}
		if again := s.ID(); again != id {
			t.Errorf("ID() of ParseSnapshotID(%q) = %q; the handle is not canonical", id, again)
		}
		// The snapshot stays strictly inside the driver's own directory:
		// one entry of SnapshotDir, whatever the name says.
		rel, ok := strings.CutPrefix(s.DataDir(), SnapshotDir+"/")
		if !ok || !isRecordKey(rel) {
			t.Fatalf("snapshot %q has data dir %q, not one hashed entry of %s", id, s.DataDir(), SnapshotDir)
		}
		checkVolumeInsideShare(t, Volume{Server: s.Server, Share: s.Share, OnDelete: OnDeleteRetain})
	})
}

// populatedVolume provisions a volume named name on sh with some files in it.
func populatedVolume(t *testing.T, sh *Share, name string) Volume {
	t.Helper()
	vol := Volume{Server: testServer, Share: testShare, SubDir: name, OnDelete: OnDeleteDelete}
	if _, err := Provision(sh, vol, Record{Name: name, VolumeID: vol.ID()}, ProvisionOptions{Compatible: func(Record) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(sh.Path(), name, "data.txt"), "before")
	mustMkdirAll(t, filepath.Join(sh.Path(), name, "dir"))
	mustSymlink(t, "/etc/shadow", filepath.Join(sh.Path(), name, "dir/link"))
	return vol
}

func TestSnapshotTakeRestoreDispose(t *testing.T) {
	sh := acquireTestShare(t)
	vol := populatedVolume(t, sh, "src")
	snap := SnapshotOf(vol, "snap-1")
	dirFd, err := OpenSnapshotDir(sh)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirFd)
	src, err := SourceVolume(sh, vol, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := SnapshotRecord{Name: snap.Name, ID: snap.ID(), SourceVolumeID: vol.ID(), SourceCapacityBytes: src.CapacityBytes, Created: time.Now().UnixNano()}
	if err := CreateSnapshotRecord(dirFd, snap, rec); err != nil {
		t.Fatal(err)
	}
	if err := CreateSnapshotRecord(dirFd, snap, rec); !errors.Is(err, ErrRecordExists) {
		t.Fatalf("second CreateSnapshotRecord: %v, want ErrRecordExists", err)
	}
	// A copy interrupted earlier left a file behind: it does not survive.
	mustMkdirAll(t, filepath.Join(sh.Path(), snap.DataDir()))
	mustWrite(t, filepath.Join(sh.Path(), snap.DataDir(), "partial"), "junk")
	rec, err = TakeSnapshot(context.Background(), sh, snap, vol, rec, CopyReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Ready || rec.SizeBytes != int64(len("before")) || rec.Method != CopyReadWrite {
		t.Errorf("record after the copy: %+v", rec)
	}
	stored, ok, err := ReadSnapshotRecord(dirFd, snap)
	if err != nil || !ok || !reflect.DeepEqual(stored, SnapshotRecord{Version: 1, Name: rec.Name, ID: rec.ID, SourceVolumeID: rec.SourceVolumeID, Created: rec.Created, Ready: true, SizeBytes: rec.SizeBytes, Method: rec.Method}) {
		t.Errorf("stored record %+v, %v, %v", stored, ok, err)
	}
	if exists(t, filepath.Join(sh.Path(), snap.DataDir(), "partial")) {
		t.Error("the interrupted copy's file is still in the snapshot")
	}
	if got := readFile(t, filepath.Join(sh.Path(), snap.DataDir(), "data.txt")); got != "before" {
		t.Errorf("snapshot data %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(sh.Path(), snap.DataDir(), "dir/link")); l != "/etc/shadow" {
		t.Errorf("symlink in the snapshot is %q", l)
	}
	list, err := ListSnapshotRecords(dirFd)
	if err != nil || len(list) != 1 || list[0].ID != snap.ID() {
		t.Errorf("ListSnapshotRecords: %+v, %v", list, err)
	}

	// The source is deleted; the snapshot still restores.
	mustWrite(t, filepath.Join(sh.Path(), "src", "data.txt"), "after")
	if done, _, err := Dispose(sh, vol, "", time.Now()); err != nil || done != Deleted {
		t.Fatalf("Dispose of the source: %v, %v", done, err)
	}
	if _, err := SourceVolume(sh, vol, ""); !errors.Is(err, ErrSourceNotFound) {
		t.Errorf("SourceVolume of a deleted volume: %v, want ErrSourceNotFound", err)
	}
	restored := Volume{Server: testServer, Share: testShare, SubDir: "restored", OnDelete: OnDeleteDelete}
	state, err := BeginFill(sh, restored, snap.ID())
	if err != nil || state != FillNew {
		t.Fatalf("BeginFill: %v, %v", state, err)
	}
	if _, err := BeginFill(sh, restored, "v1#delete#h#/s#other#"); !errors.Is(err, ErrFillConflict) {
		t.Errorf("BeginFill from another source: %v, want ErrFillConflict", err)
	}
	if _, err := Provision(sh, restored, Record{Name: "restored", VolumeID: restored.ID(), Filled: true}, ProvisionOptions{Compatible: func(Record) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	perm := uint32(0o770)
	if _, err := FillVolume(context.Background(), sh, restored, snap.ID(), snap.DataDir(), false, &perm, ""); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(sh.Path(), "restored", "data.txt")); got != "before" {
		t.Errorf("restored data %q, want the data from before the snapshot", got)
	}
	if fi, _ := os.Stat(filepath.Join(sh.Path(), "restored")); fi.Mode().Perm() != 0o770 {
		t.Errorf("restored volume mode %v, want mountPermissions 0770", fi.Mode().Perm())
	}
	if state, err := BeginFill(sh, restored, snap.ID()); err != nil || state != FillDone {
		t.Errorf("BeginFill after the fill: %v, %v, want done", state, err)
	}
	if done, _, err := Dispose(sh, restored, "", time.Now()); err != nil || done != Deleted {
		t.Fatalf("Dispose of the restored volume: %v, %v", done, err)
	}
	if marked, err := FillMarked(sh, restored); err != nil || marked {
		t.Errorf("fill marker left after Dispose: %v, %v", marked, err)
	}

	// DeleteSnapshot acts only on exactly its own ID and cluster.
	other := snap
	other.MountOptions = []string{"vers=3"}
	if done, err := DisposeSnapshot(sh, other, ""); err != nil || done != OtherOwner {
		t.Errorf("DisposeSnapshot of another ID of the same name: %v, %v", done, err)
	}
	rec.ClusterID = "cluster-a"
	if err := UpdateSnapshotRecord(dirFd, snap, rec); err != nil {
		t.Fatal(err)
	}
	var foreign *ForeignSnapshotError
	if _, err := DisposeSnapshot(sh, snap, "cluster-b"); !errors.As(err, &foreign) {
		t.Errorf("DisposeSnapshot of another cluster's snapshot: %v", err)
	}
	if !exists(t, filepath.Join(sh.Path(), snap.DataDir(), "data.txt")) {
		t.Fatal("a refused DisposeSnapshot removed data")
	}
	if done, err := DisposeSnapshot(sh, snap, "cluster-a"); err != nil || done != Deleted {
		t.Errorf("DisposeSnapshot: %v, %v", done, err)
	}
	if exists(t, filepath.Join(sh.Path(), snap.DataDir())) {
		t.Error("snapshot data left after DisposeSnapshot")
	}
	if done, err := DisposeSnapshot(sh, snap, "cluster-a"); err != nil || done != NotOurs {
		t.Errorf("second DisposeSnapshot: %v, %v", done, err)
	}
	entries, _ := os.ReadDir(filepath.Join(sh.Path(), SnapshotDir))
	if len(entries) != 0 {
		t.Errorf("entries left in %s: %v", SnapshotDir, entries)
	}
}

func TestSourceVolumeRefusesWhatIsNotAVolume(t *testing.T) {
	sh := acquireTestShare(t)
	vol := populatedVolume(t, sh, "mine")
	mustMkdirAll(t, filepath.Join(sh.Path(), "static"))
	for _, tc := range []struct {
		name string
		vol  Volume
	}{
		{"share root", Volume{Server: testServer, Share: testShare, OnDelete: OnDeleteRetain}},
		{"directory without a record", Volume{Server: testServer, Share: testShare, SubDir: "static", OnDelete: OnDeleteRetain}},
		{"another ID for a volume's directory", Volume{Server: testServer, Share: testShare, SubDir: "mine", OnDelete: OnDeleteRetain}},
		{"missing", Volume{Server: testServer, Share: testShare, SubDir: "missing", OnDelete: OnDeleteDelete}},
	} {
		if _, err := SourceVolume(sh, tc.vol, ""); !errors.Is(err, ErrSourceNotFound) {
			t.Errorf("%s: %v, want ErrSourceNotFound", tc.name, err)
		}
	}
	if _, err := SourceVolume(sh, vol, ""); err != nil {
		t.Errorf("the volume itself: %v", err)
	}
}
