package driver

import (
	"context"
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// DeleteVolume used to answer NotFound when the share was no longer exported
// ("no such export"), a code the CSI spec does not give DeleteVolume; it now
// answers Unavailable, which the provisioner retries, and deletes nothing.
func TestRegressionDeleteNoSuchExportIsRetryable(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", baseParams()).GetVolumeId()
	e.d.shares.Close()
	moved := e.export + ".moved"
	if err := os.Rename(e.export, moved); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id})
	wantCode(t, err, codes.Unavailable)
	wantMessageContains(t, err, id, testSource, "pvc-1", "retried")
	if !exists(moved + "/pvc-1") {
		t.Error("the volume's directory is gone")
	}
}
