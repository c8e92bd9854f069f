package driver

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// A static PV's handle may be any unique string (docs/volume-id.md). With
// attachRequired: true, ControllerPublishVolume used to parse the handle and
// answer NotFound forever for every handle not in the v1# form, so static PVs
// and PVs written for other NFS drivers never attached.
func TestRegressionPublishStaticFreeFormHandle(t *testing.T) {
	e := newEnv(t)
	e.mkdirExport(t, "static-dir")
	staticContext := map[string]string{"server": testServer, "share": testShare, "subDir": "static-dir"}
	tests := []struct {
		name string
		id   string
		vc   map[string]string
		want codes.Code
	}{
		{"csi-driver-nfs handle with context", testServer + "#" + testShare + "#static-dir##", staticContext, codes.OK},
		{"free-form handle with context", "shared-media", staticContext, codes.OK},
		{"csi-driver-nfs keys", "legacy-pv", map[string]string{"Server": testServer, "share": testShare, "subdir": "static-dir"}, codes.OK},
		{"whole share", "whole-share", map[string]string{"server": testServer, "share": testShare}, codes.OK},
		{"free-form handle, no context", "shared-media", nil, codes.NotFound},
		{"context with a bad subDir", "bad", map[string]string{"server": testServer, "share": testShare, "subDir": "../etc"}, codes.InvalidArgument},
		{"context with bad mount options", "bad", map[string]string{"server": testServer, "share": testShare, "mountOptions": "a b"}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{
				VolumeId: tc.id, NodeId: testNode, VolumeCapability: rwo(), VolumeContext: tc.vc,
			})
			wantCode(t, err, tc.want)
			if err != nil {
				wantMessageContains(t, err, tc.id)
			}
		})
	}
}

// Every ControllerPublishVolume used to mount the share on the controller to
// look for the directory, so one network problem between the controller and
// a server stopped every new pod, even where the nodes reached the server.
func TestRegressionPublishMountsNothing(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", baseParams()).GetVolumeId()
	e.d.shares.Close() // the share mount CreateVolume left, so a new one would show
	e.fake.FailWith = "mount.nfs: Connection timed out"
	before := e.fake.MountCalls
	for _, tc := range []struct {
		name string
		req  *csi.ControllerPublishVolumeRequest
	}{
		{"provisioned volume", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testNode, VolumeCapability: rwo()}},
		{"static volume", &csi.ControllerPublishVolumeRequest{VolumeId: "static-1", NodeId: testNode, VolumeCapability: rwo(),
			VolumeContext: map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.d.ControllerPublishVolume(context.Background(), tc.req); err != nil {
				t.Errorf("publish while the controller cannot mount the share: %v", err)
			}
		})
	}
	if got := e.fake.MountCalls - before; got != 0 {
		t.Errorf("ControllerPublishVolume mounted %d times; want none", got)
	}
	if got := e.shareMounts(t); got != 0 {
		t.Errorf("%d share mounts after publish; want none", got)
	}
}
