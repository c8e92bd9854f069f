package nfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// provisionFor provisions vol as the controller of cluster clusterID would.
func provisionFor(t *testing.T, sh *Share, vol Volume, clusterID string) {
	t.Helper()
	rec := testRecord(vol)
	rec.ClusterID = clusterID
	if _, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)}); err != nil {
		t.Fatalf("Provision(%s) for cluster %q: %v", vol.SubDir, clusterID, err)
	}
}

// shareTree lists everything below the share root, records included: each
// path with its type, a file's content and a symlink's target.
func shareTree(t *testing.T, sh *Share) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(sh.Path(), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(sh.Path(), p)
		entry := rel + " " + de.Type().String()
		switch {
		case de.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(data)
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entry += " -> " + target
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestRecordClusterIDJSON(t *testing.T) {
	tests := []struct {
		name      string
		rec       Record
		wantJSON  string
		wantField bool
	}{
		{
			name:     "no cluster ID: the field is left out, as in records written before it existed",
			rec:      Record{Name: "pvc-1", VolumeID: "v1#delete#h#/s#pvc-1#"},
			wantJSON: `{"v":1,"name":"pvc-1","id":"v1#delete#h#/s#pvc-1#"}`,
		},
		{
			name:     "cluster ID",
			rec:      Record{Name: "pvc-1", VolumeID: "v1#delete#h#/s#pvc-1#", ClusterID: "0f6c3d2e-9a1b-4c5d-8e7f-1a2b3c4d5e6f"},
			wantJSON: `{"v":1,"name":"pvc-1","id":"v1#delete#h#/s#pvc-1#","clusterID":"0f6c3d2e-9a1b-4c5d-8e7f-1a2b3c4d5e6f"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, fd := openTestRecordDir(t)
			if err := CreateRecord(fd, "pvc-1", tt.rec); err != nil {
				t.Fatal(err)
			}
			target, err := os.Readlink(filepath.Join(root, RecordDir, recordKey("pvc-1")))
			if err != nil {
				t.Fatal(err)
			}
			if target != tt.wantJSON {
				t.Errorf("record is %s, want %s", target, tt.wantJSON)
			}
			got, ok, err := ReadRecord(fd, "pvc-1")
			if err != nil || !ok || got.ClusterID != tt.rec.ClusterID {
				t.Errorf("ReadRecord = %+v, %v, %v; want cluster ID %q", got, ok, err, tt.rec.ClusterID)
			}
		})
	}
}

func TestRecordWithoutClusterIDStillReads(t *testing.T) {
	// A record as the driver wrote it before cluster IDs.
	root, fd := openTestRecordDir(t)
	old := `{"v":1,"name":"pvc-1","id":"v1#delete#h#/s#pvc-1#","capacityBytes":1073741824}`
	mustSymlink(t, old, filepath.Join(root, RecordDir, recordKey("pvc-1")))
	got, ok, err := ReadRecord(fd, "pvc-1")
	if err != nil || !ok {
		t.Fatalf("ReadRecord of an old record = %v, %v", ok, err)
	}
	want := Record{Version: 1, Name: "pvc-1", VolumeID: "v1#delete#h#/s#pvc-1#", CapacityBytes: 1 << 30}
	if got != want {
		t.Errorf("ReadRecord = %+v, want %+v", got, want)
	}
}

func TestRecordForeignTo(t *testing.T) {
	tests := []struct {
		record, controller string
		want               bool
	}{
		{"", "", false},
		{"", "cluster-a", false}, // an old record: every controller may act on it
		{"cluster-a", "cluster-a", false},
		{"cluster-a", "cluster-b", true},
		{"cluster-a", "", true}, // a controller without --cluster-id
		{"cluster-a", "Cluster-A", true},
	}
	for _, tt := range tests {
		if got := (Record{ClusterID: tt.record}).ForeignTo(tt.controller); got != tt.want {
			t.Errorf("Record{ClusterID: %q}.ForeignTo(%q) = %v, want %v", tt.record, tt.controller, got, tt.want)
		}
	}
}

func TestProvisionStoresClusterID(t *testing.T) {
	for _, clusterID := range []string{"", "cluster-a"} {
		t.Run("cluster "+clusterID, func(t *testing.T) {
			sh := acquireTestShare(t)
			vol := testVolume("ns/pvc-1", OnDeleteDelete)
			provisionFor(t, sh, vol, clusterID)
			rec, ok := readShareRecord(t, sh, vol.SubDir)
			if !ok || rec.ClusterID != clusterID {
				t.Errorf("stored record %+v (found %v), want cluster ID %q", rec, ok, clusterID)
			}
		})
	}
}

func TestDisposeClusterID(t *testing.T) {
	tests := []struct {
		name          string
		recordCluster string // the cluster of the controller that created the volume
		cluster       string // the cluster of the controller that disposes of it
		policy        OnDelete
		want          Disposal // for a disposal that is allowed
		refused       bool
	}{
		{name: "same cluster deletes", recordCluster: "cluster-a", cluster: "cluster-a", policy: OnDeleteDelete, want: Deleted},
		{name: "same cluster archives", recordCluster: "cluster-a", cluster: "cluster-a", policy: OnDeleteArchive, want: Archived},
		{name: "same cluster retains", recordCluster: "cluster-a", cluster: "cluster-a", policy: OnDeleteRetain, want: Retained},
		{name: "record without cluster ID, controller with one", recordCluster: "", cluster: "cluster-a", policy: OnDeleteDelete, want: Deleted},
		{name: "neither has a cluster ID", recordCluster: "", cluster: "", policy: OnDeleteDelete, want: Deleted},
		{name: "other cluster, delete", recordCluster: "cluster-a", cluster: "cluster-b", policy: OnDeleteDelete, refused: true},
		{name: "other cluster, archive", recordCluster: "cluster-a", cluster: "cluster-b", policy: OnDeleteArchive, refused: true},
		{name: "other cluster, retain", recordCluster: "cluster-a", cluster: "cluster-b", policy: OnDeleteRetain, refused: true},
		{name: "controller without cluster ID, record with one", recordCluster: "cluster-a", cluster: "", policy: OnDeleteDelete, refused: true},
		{name: "controller without cluster ID, record with one, archive", recordCluster: "cluster-a", cluster: "", policy: OnDeleteArchive, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := acquireTestShare(t)
			vol := testVolume("ns/pvc-1", tt.policy)
			provisionFor(t, sh, vol, tt.recordCluster)
			data := filepath.Join(sh.Path(), "ns", "pvc-1", "dir", "data")
			mustWrite(t, data, "cluster data")
			before := shareTree(t, sh)

			done, archivedAs, err := Dispose(sh, vol, tt.cluster, time.Now())
			if tt.refused {
				var foreign *ForeignClusterError
				if !errors.As(err, &foreign) {
					t.Fatalf("Dispose = %q, %q, %v; want a ForeignClusterError", done, archivedAs, err)
				}
				if foreign.RecordCluster != tt.recordCluster || foreign.Cluster != tt.cluster || foreign.Volume.ID() != vol.ID() {
					t.Errorf("error %+v, want record cluster %q, cluster %q, volume %s", foreign, tt.recordCluster, tt.cluster, vol.ID())
				}
				if done != "" || archivedAs != "" {
					t.Errorf("a refused Dispose reports %q, %q", done, archivedAs)
				}
				if after := shareTree(t, sh); !slices.Equal(before, after) {
					t.Errorf("a refused Dispose changed the share:\nbefore %q\nafter  %q", before, after)
				}
				// The owning cluster can still dispose of its volume.
				if done, _, err := Dispose(sh, vol, tt.recordCluster, time.Now()); err != nil || done == "" {
					t.Errorf("Dispose by the owning cluster afterwards = %q, %v", done, err)
				}
				return
			}
			if err != nil || done != tt.want {
				t.Fatalf("Dispose = %q, %v; want %q", done, err, tt.want)
			}
			if rec, ok := readShareRecord(t, sh, vol.SubDir); ok != (tt.want == Retained) || ok && !rec.Tombstone {
				t.Errorf("record after %q: %+v, %v; want a tombstone only for %q", tt.want, rec, ok, Retained)
			}
			switch tt.want {
			case Deleted:
				if exists(t, data) {
					t.Error("the data was not deleted")
				}
			case Archived:
				if got := readFile(t, filepath.Join(sh.Path(), archivedAs, "dir", "data")); got != "cluster data" {
					t.Errorf("archived data = %q", got)
				}
			case Retained:
				if got := readFile(t, data); got != "cluster data" {
					t.Errorf("retained data = %q", got)
				}
			}
		})
	}
}

func TestDisposeClusterIDRetryAfterPartialDelete(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-1", OnDeleteDelete)
	provisionFor(t, sh, vol, "cluster-a")
	busyFile := filepath.Join(sh.Path(), "ns", "pvc-1", ".nfs000000000000abcd00000001")
	mustWrite(t, busyFile, "open on another node")
	mustWrite(t, filepath.Join(sh.Path(), "ns", "pvc-1", "other"), "x")

	if _, _, err := Dispose(sh, vol, "cluster-a", time.Now()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Dispose with a busy file = %v, want ErrBusy", err)
	}
	if rec, ok := readShareRecord(t, sh, vol.SubDir); !ok || rec.ClusterID != "cluster-a" {
		t.Fatalf("after the partial delete the record is %+v (found %v)", rec, ok)
	}
	// Another cluster's controller still may not finish it.
	if _, _, err := Dispose(sh, vol, "cluster-b", time.Now()); !errors.As(err, new(*ForeignClusterError)) {
		t.Errorf("Dispose by another cluster after the partial delete = %v, want a ForeignClusterError", err)
	}
	if err := os.Remove(busyFile); err != nil {
		t.Fatal(err)
	}
	if done, _, err := Dispose(sh, vol, "cluster-a", time.Now()); err != nil || done != Deleted {
		t.Fatalf("retried Dispose = %q, %v; want %q", done, err, Deleted)
	}
	if exists(t, filepath.Join(sh.Path(), "ns")) {
		t.Error("the volume or its template parent survived the retry")
	}
	if _, ok := readShareRecord(t, sh, vol.SubDir); ok {
		t.Error("the record survived the retry")
	}
}

func TestDisposeOtherVolumeIDOfOtherClusterIsLeftAlone(t *testing.T) {
	// A handle that does not match the record stays OtherOwner (OK, nothing
	// done) whatever the record's cluster: the cluster check comes after.
	sh := acquireTestShare(t)
	owner := testVolume("pvc-1", OnDeleteRetain)
	provisionFor(t, sh, owner, "cluster-a")
	before := shareTree(t, sh)
	forged := testVolume("pvc-1", OnDeleteDelete)
	done, _, err := Dispose(sh, forged, "cluster-b", time.Now())
	if err != nil || done != OtherOwner {
		t.Errorf("Dispose = %q, %v; want %q", done, err, OtherOwner)
	}
	if after := shareTree(t, sh); !slices.Equal(before, after) {
		t.Errorf("the share changed: %q -> %q", before, after)
	}
}

func TestForeignClusterErrorMessage(t *testing.T) {
	vol := Volume{Server: "nfs.example.test", Share: "/srv/nfs", SubDir: "ns/pvc-1", OnDelete: OnDeleteDelete}
	tests := []struct {
		name    string
		cluster string
		want    []string
	}{
		{"controller with a cluster ID", "cluster-b", []string{`runs with --cluster-id "cluster-b"`}},
		{"controller without a cluster ID", "", []string{"runs without --cluster-id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := (&ForeignClusterError{Volume: vol, RecordCluster: "cluster-a", Cluster: tt.cluster}).Error()
			want := append([]string{
				`volume "` + vol.ID() + `"`,
				"directory /srv/nfs/ns/pvc-1 on nfs.example.test",
				`created by cluster "cluster-a"`,
				"unchanged",
				"persistentVolumeReclaimPolicy to Retain and delete the PV object",
				"/srv/nfs/" + RecordDir + "/" + recordKey("ns/pvc-1"),
			}, tt.want...)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}
