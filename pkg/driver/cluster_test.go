package driver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
)

// controllerOf starts another controller on the env's export, as the
// controller of the cluster clusterID: a second cluster's controller that
// sees the same NFS share. It is closed when the test ends.
func (e *env) controllerOf(t *testing.T, clusterID string) *Driver {
	t.Helper()
	d, err := New(Config{
		Mode: ModeController, WorkDir: t.TempDir(), Mounter: e.fake, MountHelper: e.helper, ClusterID: clusterID,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// records lists the volume records (entries named by 32 hex digits) with
// their targets.
func (e *env) records(t *testing.T) []string {
	t.Helper()
	dir := e.exportPath(nfs.RecordDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, de := range entries {
		if len(de.Name()) != 32 { // name entries and markers beside the records
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, de.Name()+" -> "+target)
	}
	sort.Strings(out)
	return out
}

func deleteVolume(d *Driver, id string) error {
	_, err := d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id})
	return err
}

func TestDeleteVolumeClusterID(t *testing.T) {
	tests := []struct {
		name      string
		createdBy string // --cluster-id of the controller that creates the volume
		deletedBy string // --cluster-id of the controller asked to delete it
		policy    string
		wantCode  codes.Code
		wantMsg   []string
	}{
		{name: "same cluster deletes", createdBy: "cluster-a", deletedBy: "cluster-a", policy: "delete", wantCode: codes.OK},
		{name: "same cluster archives", createdBy: "cluster-a", deletedBy: "cluster-a", policy: "archive", wantCode: codes.OK},
		{name: "record without cluster ID, controller with one", createdBy: "", deletedBy: "cluster-b", policy: "delete", wantCode: codes.OK},
		{
			name: "other cluster refused", createdBy: "cluster-a", deletedBy: "cluster-b", policy: "delete",
			wantCode: codes.FailedPrecondition,
			wantMsg:  []string{`"cluster-a"`, `--cluster-id "cluster-b"`, "/export/pvc-1 on " + testServer, "Retain", "delete the PV object"},
		},
		{
			name: "other cluster refused, archive policy", createdBy: "cluster-a", deletedBy: "cluster-b", policy: "archive",
			wantCode: codes.FailedPrecondition,
			wantMsg:  []string{`"cluster-a"`, `--cluster-id "cluster-b"`},
		},
		{
			name: "other cluster refused, retain policy", createdBy: "cluster-a", deletedBy: "cluster-b", policy: "retain",
			wantCode: codes.FailedPrecondition,
			wantMsg:  []string{`"cluster-a"`, `--cluster-id "cluster-b"`},
		},
		{
			name: "controller without cluster ID, record with one", createdBy: "cluster-a", deletedBy: "", policy: "delete",
			wantCode: codes.FailedPrecondition,
			wantMsg:  []string{`"cluster-a"`, "without --cluster-id"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			creator := e.controllerOf(t, tc.createdBy)
			resp, err := creator.CreateVolume(context.Background(), createReq("pvc-1", withParams(map[string]string{"onDelete": tc.policy})))
			if err != nil {
				t.Fatal(err)
			}
			id := resp.GetVolume().GetVolumeId()
			e.writeExport(t, "pvc-1/sub/data", "cluster data")
			before, beforeRecords := snapshot(t, e.export), e.records(t)
			if len(beforeRecords) != 1 {
				t.Fatalf("records after CreateVolume: %q, want one", beforeRecords)
			}

			err = deleteVolume(e.controllerOf(t, tc.deletedBy), id)
			wantCode(t, err, tc.wantCode)
			if tc.wantCode == codes.OK {
				if exists(e.exportPath("pvc-1")) && tc.policy != "retain" {
					t.Error("pvc-1 is still there")
				}
				if got := e.records(t); len(got) != 0 {
					t.Errorf("records left: %q", got)
				}
				return
			}
			wantMessageContains(t, err, append([]string{id}, tc.wantMsg...)...)
			if after := snapshot(t, e.export); !slices.Equal(before, after) {
				t.Errorf("a refused DeleteVolume changed the export: %q -> %q", before, after)
			}
			if after := e.records(t); !slices.Equal(beforeRecords, after) {
				t.Errorf("a refused DeleteVolume changed the records: %q -> %q", beforeRecords, after)
			}
			// Refused again on retry: nothing was half done.
			wantCode(t, deleteVolume(e.controllerOf(t, tc.deletedBy), id), codes.FailedPrecondition)
			// The cluster that created the volume still deletes it.
			if err := deleteVolume(creator, id); err != nil {
				t.Fatalf("DeleteVolume by the creating cluster: %v", err)
			}
			got := e.records(t)
			if tc.policy == "retain" {
				// retain leaves a tombstone naming the volume.
				if len(got) != 1 || !strings.Contains(got[0], `"tombstone":true`) {
					t.Errorf("records left after the owner's retaining DeleteVolume: %q, want one tombstone", got)
				}
			} else if len(got) != 0 {
				t.Errorf("records left after the owner's DeleteVolume: %q", got)
			}
		})
	}
}

func TestDeleteVolumeClusterIDRetryAfterPartialDelete(t *testing.T) {
	e := newEnv(t)
	d := e.controllerOf(t, "cluster-a")
	resp, err := d.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	e.writeExport(t, "pvc-1/data", "x")
	e.writeExport(t, "pvc-1/dir/.nfs000000000000000100000001", "open elsewhere")
	wantCode(t, deleteVolume(d, id), codes.FailedPrecondition) // busy
	if exists(e.exportPath("pvc-1/data")) {
		t.Fatal("the partial delete removed nothing")
	}
	if err := os.Remove(e.exportPath("pvc-1/dir/.nfs000000000000000100000001")); err != nil {
		t.Fatal(err)
	}
	// A restarted controller of the same cluster finishes the job.
	if err := deleteVolume(e.controllerOf(t, "cluster-a"), id); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if exists(e.exportPath("pvc-1")) || len(e.records(t)) != 0 {
		t.Errorf("after the retry: pvc-1 exists %v, records %q", exists(e.exportPath("pvc-1")), e.records(t))
	}
}

func TestCreateVolumeClusterID(t *testing.T) {
	tests := []struct {
		name      string
		createdBy string
		againBy   string
		wantCode  codes.Code
		wantMsg   []string
	}{
		{name: "same cluster retry is idempotent", createdBy: "cluster-a", againBy: "cluster-a", wantCode: codes.OK},
		{name: "record without cluster ID, controller with one", createdBy: "", againBy: "cluster-a", wantCode: codes.OK},
		{
			name: "other cluster", createdBy: "cluster-a", againBy: "cluster-b", wantCode: codes.AlreadyExists,
			wantMsg: []string{`"pvc-1"`, `cluster "cluster-a"`, `--cluster-id "cluster-b"`, "pvc-1 on " + testSource},
		},
		{
			name: "controller without cluster ID, record with one", createdBy: "cluster-a", againBy: "", wantCode: codes.AlreadyExists,
			wantMsg: []string{`cluster "cluster-a"`, "without --cluster-id"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			req := createReq("pvc-1", baseParams())
			first, err := e.controllerOf(t, tc.createdBy).CreateVolume(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			e.writeExport(t, "pvc-1/data", "first")
			before, beforeRecords := snapshot(t, e.export), e.records(t)

			again, err := e.controllerOf(t, tc.againBy).CreateVolume(context.Background(), req)
			wantCode(t, err, tc.wantCode)
			if tc.wantCode == codes.OK {
				if again.GetVolume().GetVolumeId() != first.GetVolume().GetVolumeId() {
					t.Errorf("retry returned %s, first %s", again.GetVolume().GetVolumeId(), first.GetVolume().GetVolumeId())
				}
			} else {
				wantMessageContains(t, err, tc.wantMsg...)
			}
			if after := snapshot(t, e.export); !slices.Equal(before, after) {
				t.Errorf("the export changed: %q -> %q", before, after)
			}
			// The record still names the cluster that created the volume.
			if after := e.records(t); !slices.Equal(beforeRecords, after) {
				t.Errorf("the records changed: %q -> %q", beforeRecords, after)
			}
		})
	}
}
