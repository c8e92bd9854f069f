//go:build uml

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// setImmutable runs chattr +i or -i on dir, on the server's side of the
// export (tmpfs supports it since Linux 6.0): nfsd then refuses to create
// anything in it, even for a client root that is not squashed.
func setImmutable(t *testing.T, dir string, on bool) {
	t.Helper()
	flag := "-i"
	if on {
		flag = "+i"
	}
	if out, err := exec.Command("chattr", flag, dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v: %s", flag, dir, err, out)
	}
}

// With the README's own ${pvc.metadata.namespace}/${pvc.metadata.name}
// template and a parent the driver cannot write, a failed CreateVolume used
// to leave its record behind; deleting the Pending PVC and creating it again
// (a new volume name for the same subDir) then got AlreadyExists forever.
func TestFailedCreateLeavesNoRecord(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			ns := "locked-" + v.vers
			parent := filepath.Join(exportDir(), ns)
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(parent) })
			setImmutable(t, parent, true)
			t.Cleanup(func() { setImmutable(t, parent, false) })
			params := map[string]string{
				"subDir":                           "${pvc.metadata.namespace}/${pvc.metadata.name}",
				"csi.storage.k8s.io/pvc/namespace": ns,
				"csi.storage.k8s.io/pvc/name":      "data",
			}
			_, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
				Name: "pvc-first-" + v.vers, Parameters: e.params(params), VolumeCapabilities: []*csi.VolumeCapability{rwo},
			})
			if err == nil {
				t.Fatal("CreateVolume under an immutable parent succeeded")
			}
			t.Logf("CreateVolume under an immutable parent: %v", err)

			// The admin fixes the parent; the user recreates the PVC.
			setImmutable(t, parent, false)
			vol := e.create("pvc-second-"+v.vers, params)
			if _, err := os.Stat(filepath.Join(parent, "data")); err != nil {
				t.Fatalf("the recreated claim's directory: %v", err)
			}
			e.delete(vol.GetVolumeId())
		})
	}
}
