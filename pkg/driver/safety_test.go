package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// Symlinks that a volume's user (or anyone with write access to the share)
// plants must never lead the controller outside the share.

// outside makes a directory beside the export with data in it.
func (e *env) outside(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(e.base, "outside")
	for _, rel := range []string{"a/data", "b/data", "data"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("not yours"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func nsParams(name string) map[string]string {
	return withParams(map[string]string{
		"subDir":                           "${pvc.metadata.namespace}/${pvc.metadata.name}",
		"csi.storage.k8s.io/pvc/name":      name,
		"csi.storage.k8s.io/pvc/namespace": "ns",
	})
}

func TestSymlinkedParentIsNotFollowed(t *testing.T) {
	e := newEnv(t)
	a := e.create(t, "pvc-a", nsParams("a"))
	outside := e.outside(t)
	before := snapshot(t, outside)
	// Replace the parent "ns" with a symlink to the outside directory,
	// which has an "a" and a "b" of its own.
	if err := os.RemoveAll(e.exportPath("ns")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.exportPath("ns")); err != nil {
		t.Fatal(err)
	}

	_, err := e.d.CreateVolume(context.Background(), createReq("pvc-b", nsParams("b")))
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, "symlink")

	_, err = e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: a.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, "symlink")
	// The same directory under other policies: whatever the answer, nothing
	// outside may change.
	for _, id := range []string{volumeIDFor("ns/a", "archive"), volumeIDFor("ns/a", "retain")} {
		_, _ = e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id})
	}
	_, err = e.d.ValidateVolumeCapabilities(context.Background(), &csi.ValidateVolumeCapabilitiesRequest{VolumeId: a.GetVolumeId(), VolumeCapabilities: []*csi.VolumeCapability{rwo()}})
	wantCode(t, err, codes.NotFound)

	if after := snapshot(t, outside); !sameStrings(before, after) {
		t.Errorf("the directory outside the share changed: %q -> %q", before, after)
	}
}

func TestSymlinkedVolumeDirectoryIsNotFollowed(t *testing.T) {
	for _, policy := range []string{"delete", "archive", "retain"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t)
			v := e.create(t, "pvc-1", withParams(map[string]string{"onDelete": policy}))
			outside := e.outside(t)
			before := snapshot(t, outside)
			if err := os.Remove(e.exportPath("pvc-1")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, e.exportPath("pvc-1")); err != nil {
				t.Fatal(err)
			}
			_, _ = e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()})
			if after := snapshot(t, outside); !sameStrings(before, after) {
				t.Errorf("the directory outside the share changed: %q -> %q", before, after)
			}
		})
	}
}

func TestSymlinksInsideVolumeAreUnlinkedNotFollowed(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	outside := e.outside(t)
	before := snapshot(t, outside)
	e.mkdirExport(t, "pvc-1/deep/er")
	for _, link := range []string{"pvc-1/link", "pvc-1/deep/er/link", "pvc-1/deep/file-link"} {
		target := outside
		if filepath.Base(link) == "file-link" {
			target = filepath.Join(outside, "data")
		}
		if err := os.Symlink(target, e.exportPath(link)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.exportPath("pvc-1")); !os.IsNotExist(err) {
		t.Errorf("pvc-1 still exists: %v", err)
	}
	if after := snapshot(t, outside); !sameStrings(before, after) {
		t.Errorf("the directory outside the share changed: %q -> %q", before, after)
	}
}

func TestRecordsDirectoryIsNotAVolume(t *testing.T) {
	e := newEnv(t)
	e.create(t, "pvc-1", baseParams())
	// Neither a name, a template nor a handle may reach the records.
	_, err := e.d.CreateVolume(context.Background(), createReq(".nfs-csi", baseParams()))
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.d.CreateVolume(context.Background(), createReq("x", withParams(map[string]string{"subDir": ".nfs-csi/volumes"})))
	wantCode(t, err, codes.InvalidArgument)
	before := e.records(t)
	if len(before) != 1 {
		t.Fatalf("records: %q; want one", before)
	}
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: "v1#delete#10.0.0.1#/export#.nfs-csi#"}); err != nil {
		t.Fatal(err)
	}
	if after := e.records(t); !sameStrings(before, after) {
		t.Errorf("records after DeleteVolume of the records directory: %q, want %q", after, before)
	}
}
