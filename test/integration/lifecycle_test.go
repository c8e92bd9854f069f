//go:build uml

package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// A nested, templated subDir lands where the template says on the real
// export, and deleting the volume removes the parents the template made.
func TestTemplatedNestedSubDir(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			vol := e.create("pvc-tpl-"+v.vers, map[string]string{
				"subDir":                           "${pvc.metadata.namespace}/${pvc.metadata.name}",
				"csi.storage.k8s.io/pvc/namespace": "team-" + v.vers,
				"csi.storage.k8s.io/pvc/name":      "data-web-0",
				"csi.storage.k8s.io/pv/name":       "pvc-tpl-" + v.vers,
			})
			dir := filepath.Join(exportDir(), "team-"+v.vers, "data-web-0")
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				t.Fatalf("volume directory %s: %v", dir, err)
			}
			if got := vol.GetVolumeContext()["subDir"]; got != "team-"+v.vers+"/data-web-0" {
				t.Errorf("volume context subDir = %q", got)
			}
			e.delete(vol.GetVolumeId())
			if _, err := os.Stat(filepath.Join(exportDir(), "team-"+v.vers)); !os.IsNotExist(err) {
				t.Errorf("the template's parent directory survived the delete: %v", err)
			}
			if _, err := os.Stat(exportDir()); err != nil {
				t.Fatalf("export root: %v", err)
			}
		})
	}
}

// Each onDelete policy does what it says with data written through a real
// NFS mount.
func TestOnDeletePolicies(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			for _, policy := range []string{"delete", "retain", "archive"} {
				name := fmt.Sprintf("pvc-%s-%s", policy, v.vers)
				vol := e.create(name, map[string]string{"onDelete": policy})
				target := e.target(name)
				e.publish(vol, target, rwo, false)
				mustWrite(t, filepath.Join(target, "data.txt"), "payload-"+policy)
				e.unpublish(vol.GetVolumeId(), target)
				e.delete(vol.GetVolumeId())

				dir := filepath.Join(exportDir(), name)
				_, statErr := os.Stat(dir)
				archives := archivesOf(t, exportDir(), name)
				switch policy {
				case "delete":
					if !os.IsNotExist(statErr) || len(archives) != 0 {
						t.Errorf("delete: directory still there (%v) or archived %v", statErr, archives)
					}
				case "retain":
					if got := mustRead(t, filepath.Join(dir, "data.txt")); got != "payload-retain" {
						t.Errorf("retain: data = %q", got)
					}
				case "archive":
					if !os.IsNotExist(statErr) || len(archives) != 1 {
						t.Fatalf("archive: directory %v, archives %v", statErr, archives)
					}
					if got := mustRead(t, filepath.Join(exportDir(), archives[0], "data.txt")); got != "payload-archive" {
						t.Errorf("archive: data = %q", got)
					}
				}
			}
		})
	}
}

// Archiving the same PVC name twice, even within one second, keeps both.
func TestArchiveSameNameTwiceKeepsBoth(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-twice-" + v.vers
			for i := range 2 {
				vol := e.create(name, map[string]string{"onDelete": "archive"})
				mustWrite(t, filepath.Join(exportDir(), name, "gen"), fmt.Sprint(i))
				e.delete(vol.GetVolumeId())
			}
			archives := archivesOf(t, exportDir(), name)
			if len(archives) != 2 {
				t.Fatalf("archives = %v, want 2", archives)
			}
			seen := map[string]bool{}
			for _, a := range archives {
				seen[mustRead(t, filepath.Join(exportDir(), a, "gen"))] = true
			}
			if !seen["0"] || !seen["1"] {
				t.Errorf("archive contents %v, want both generations", seen)
			}
		})
	}
}

// Publish really mounts the subdirectory and unpublish really unmounts it
// and removes the target.
func TestPublishUnpublishMounts(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-mount-" + v.vers
			vol := e.create(name, nil)
			target := e.target(name)
			e.publish(vol, target, rwo, false)
			src, ok := mountSource(t, target)
			if !ok || filepath.Base(src) != name {
				t.Fatalf("after publish: mounted=%v source=%q", ok, src)
			}
			mustWrite(t, filepath.Join(target, "hello"), "from the pod")
			if got := mustRead(t, filepath.Join(exportDir(), name, "hello")); got != "from the pod" {
				t.Errorf("on the export: %q", got)
			}
			e.publish(vol, target, rwo, false) // idempotent
			e.unpublish(vol.GetVolumeId(), target)
			if _, ok := mountSource(t, target); ok {
				t.Errorf("still mounted after unpublish")
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("target not removed: %v", err)
			}
			e.unpublish(vol.GetVolumeId(), target) // idempotent
			e.delete(vol.GetVolumeId())
		})
	}
}

// A readonly publish, by flag or by a reader-only access mode, refuses writes.
func TestReadOnlyIsReadOnly(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-ro-" + v.vers
			vol := e.create(name, nil)
			mustWrite(t, filepath.Join(exportDir(), name, "existing"), "old")
			cases := []struct {
				label    string
				c        *csi.VolumeCapability
				readonly bool
			}{
				{"readonly flag", rwo, true},
				{"reader-only mode", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), false},
			}
			for i, tc := range cases {
				target := e.target(fmt.Sprintf("%s-%d", name, i))
				e.publish(vol, target, tc.c, tc.readonly)
				if got := mustRead(t, filepath.Join(target, "existing")); got != "old" {
					t.Errorf("%s: read %q", tc.label, got)
				}
				err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
				if !errors.Is(err, syscall.EROFS) {
					t.Errorf("%s: write gave %v, want EROFS", tc.label, err)
				}
				e.unpublish(vol.GetVolumeId(), target)
			}
			e.delete(vol.GetVolumeId())
		})
	}
}

// Fifty concurrent CreateVolume calls for one name make one directory and
// one volume.
func TestConcurrentCreateSameName(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-race-" + v.vers
			ids := make([]string, 50)
			errs := make([]error, 50)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
						Name: name, Parameters: e.params(nil), VolumeCapabilities: []*csi.VolumeCapability{rwo},
					})
					ids[i], errs[i] = resp.GetVolume().GetVolumeId(), err
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if ids[i] != ids[0] {
					t.Fatalf("call %d returned %s, call 0 %s", i, ids[i], ids[0])
				}
			}
			matches, _ := filepath.Glob(filepath.Join(exportDir(), name+"*"))
			if len(matches) != 1 {
				t.Fatalf("directories for %s: %v", name, matches)
			}
			if records := volumeRecords(t); len(records) != 1 {
				t.Errorf("records: %q, want 1", records)
			}
			e.delete(ids[0])
		})
	}
}

// A second target for a single-writer volume is refused on a real mount too.
func TestSingleWriterSecondTarget(t *testing.T) {
	v := versions(t)[1]
	e := startDriver(t, v)
	vol := e.create("pvc-sw", nil)
	sw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	e.publish(vol, e.target("sw-a"), sw, false)
	_, err := e.node.NodePublishVolume(e.ctx(), &csi.NodePublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), TargetPath: e.target("sw-b"), VolumeCapability: sw, VolumeContext: vol.GetVolumeContext(),
	})
	wantCode(t, err, codes.FailedPrecondition)
	e.unpublish(vol.GetVolumeId(), e.target("sw-a"))
	e.delete(vol.GetVolumeId())
}
