//go:build uml

package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// No request, template, ID or planted symlink makes the driver create,
// change or delete anything outside the volumes it created: not a directory
// beside the export, not an unrelated directory on the export, not the
// export root. The trees are compared before and after.
func TestMaliciousInputsTouchNothingOutside(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			outside := "/run/outside-" + v.vers
			victim := filepath.Join(exportDir(), "victim-"+v.vers)
			for _, d := range []string{outside, filepath.Join(outside, "deep"), victim} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mustWrite(t, filepath.Join(outside, "precious"), "outside data")
			mustWrite(t, filepath.Join(outside, "deep", "precious"), "deeper data")
			mustWrite(t, filepath.Join(victim, "precious"), "victim data")
			// A symlink on the server that a template component could follow.
			tpl := filepath.Join(exportDir(), "tpl-"+v.vers)
			if err := os.Symlink(outside, tpl); err != nil {
				t.Fatal(err)
			}
			before := [][]string{treeSnapshot(t, outside), treeSnapshot(t, victim)}

			// Requests that must be refused outright.
			badCreates := []map[string]string{
				{"subDir": "../outside-" + v.vers},
				{"subDir": outside},
				{"subDir": "victim-" + v.vers + "/../../outside-" + v.vers},
				{"subDir": "a//b"},
				{"subDir": ".nfs-csi/volumes"},
				{"subDir": "${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": ".."},
				{"subDir": "${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": "../outside-" + v.vers},
				{"subDir": "x/${pvc.metadata.namespace}", "csi.storage.k8s.io/pvc/namespace": "."},
				{"share": v.share + "/../.."},
				{"subDir": "nul\x00byte"},
			}
			for _, extra := range badCreates {
				_, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
					Name: "pvc-bad", Parameters: e.params(extra), VolumeCapabilities: []*csi.VolumeCapability{rwo},
				})
				wantCode(t, err, codes.InvalidArgument)
			}
			// A template through a server-side symlink is refused, not followed.
			_, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
				Name: "pvc-via-symlink", VolumeCapabilities: []*csi.VolumeCapability{rwo},
				Parameters: e.params(map[string]string{"subDir": "tpl-" + v.vers + "/${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": "x"}),
			})
			wantCode(t, err, codes.FailedPrecondition)

			// IDs that must delete nothing: malformed, escaping, the share
			// root, and well-formed ones naming a directory the driver never
			// created.
			opts := "vers=" + v.vers
			ids := []string{
				"v1#delete#127.0.0.1#" + v.share + "#../outside-" + v.vers + "#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "#victim-" + v.vers + "/../..#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "##" + opts,
				"v1#archive#127.0.0.1#" + v.share + "##" + opts,
				"v1#delete#127.0.0.1#" + v.share + "#victim-" + v.vers + "#" + opts,
				"v1#archive#127.0.0.1#" + v.share + "#victim-" + v.vers + "#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "#tpl-" + v.vers + "#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "#.nfs-csi#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "/..#victim-" + v.vers + "#" + opts,
				"v1#delete#127.0.0.1#" + v.share + "#%2e%2e#" + opts,
				"../../run/outside-" + v.vers,
				outside,
			}
			for _, id := range ids {
				e.delete(id)
			}

			// Symlinks a volume's user plants inside the volume are removed
			// with it, never followed.
			vol := e.create("pvc-evil-"+v.vers, nil)
			target := e.target("evil")
			e.publish(vol, target, rwo, false)
			for link, to := range map[string]string{
				"abs-out":    outside,
				"rel-victim": "../victim-" + v.vers,
				"root":       "/",
			} {
				if err := os.Symlink(to, filepath.Join(target, link)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(target, "sub", "deeper"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../../../victim-"+v.vers, filepath.Join(target, "sub", "deeper", "up")); err != nil {
				t.Fatal(err)
			}
			e.unpublish(vol.GetVolumeId(), target)
			e.delete(vol.GetVolumeId())
			if _, err := os.Lstat(filepath.Join(exportDir(), "pvc-evil-"+v.vers)); !os.IsNotExist(err) {
				t.Errorf("the volume itself was not deleted: %v", err)
			}

			// A volume whose directory was swapped for a symlink on the
			// server loses the symlink, not the symlink's target.
			swap := e.create("pvc-swap-"+v.vers, nil)
			swapDir := filepath.Join(exportDir(), "pvc-swap-"+v.vers)
			if err := os.Remove(swapDir); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("victim-"+v.vers, swapDir); err != nil {
				t.Fatal(err)
			}
			e.delete(swap.GetVolumeId())

			after := [][]string{treeSnapshot(t, outside), treeSnapshot(t, victim)}
			for i := range before {
				if !slices.Equal(before[i], after[i]) {
					t.Errorf("tree changed:\nbefore %s\nafter  %s", strings.Join(before[i], "\n       "), strings.Join(after[i], "\n       "))
				}
			}
			if _, err := os.Lstat(tpl); err != nil {
				t.Errorf("the server-side symlink was touched: %v", err)
			}
			if st, err := os.Stat(exportDir()); err != nil || !st.IsDir() {
				t.Fatalf("export root: %v", err)
			}
			os.RemoveAll(outside)
			os.RemoveAll(victim)
			os.Remove(tpl)
		})
	}
}
