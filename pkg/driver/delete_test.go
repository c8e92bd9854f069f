package driver

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
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

// noV3Mounter is a server that dropped NFSv3: a mount with nfsvers=3 fails
// the way mount.nfs reports it.
type noV3Mounter struct{ *nfs.FakeMounter }

func (m noV3Mounter) Mount(ctx context.Context, source, target string, options []string) error {
	if slices.Contains(options, "nfsvers=3") {
		return &nfs.MountError{Source: source, Target: target, Err: errors.New("exit status 32"),
			Output: "mount.nfs: requested NFS version or transport protocol is not supported"}
	}
	return m.FakeMounter.Mount(ctx, source, target, options)
}

// A volume's ID carries the mount options it was created with, and the
// controller used to mount the share with exactly those: once the server
// dropped NFSv3, DeleteVolume of an nfsvers=3 volume failed forever, and the
// handle cannot be edited. --share-mount-options now overrides them.
func TestRegressionDeleteWithConfiguredShareOptions(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", withParams(map[string]string{"mountOptions": "nfsvers=3"})).GetVolumeId()
	e.close()
	m := noV3Mounter{e.fake}
	newController := func(shareOptions string) *Driver {
		d, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: m, MountHelper: e.helper, ShareMountOptions: shareOptions})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return d
	}

	err := deleteVolume(newController(""), id)
	wantCode(t, err, codes.FailedPrecondition)
	if !exists(e.exportPath("pvc-1")) {
		t.Fatal("the failed delete removed the directory")
	}

	d := newController(`[{"server":"` + testServer + `","share":"` + testShare + `","mountOptions":["nfsvers=4.1"]}]`)
	if err := deleteVolume(d, id); err != nil {
		t.Fatalf("DeleteVolume with the share's options configured: %v", err)
	}
	if exists(e.exportPath("pvc-1")) {
		t.Error("the directory is still there")
	}
}

func TestShareMountOptionsFlagValidated(t *testing.T) {
	_, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: nfs.NewFakeMounter(nil), ShareMountOptions: `[{"server":"s","share":"rel","mountOptions":[]}]`})
	if err == nil || !strings.Contains(err.Error(), "--share-mount-options") {
		t.Fatalf("New = %v, want an error naming --share-mount-options", err)
	}
}
