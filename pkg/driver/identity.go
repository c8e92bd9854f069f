package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GetPluginInfo returns the driver's name and version.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.DriverName, VendorVersion: Version()}, nil
}

// GetPluginCapabilities says the plugin has a controller service and
// expands volumes online (ControllerExpandVolume alone: nothing on the node
// changes). It has no topology: an NFS server is reachable from every node
// or from none.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}, {
		Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}},
	}}}, nil
}

// Probe is ready when mount.nfs is installed and, for the controller, the
// working directory is writable. A failure says which, so that a
// CrashLoopBackOff from the livenessprobe explains itself.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	if err := d.checkMountHelper(); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "not ready: %v", err)
	}
	if d.cfg.runsController() {
		f, err := os.CreateTemp(d.cfg.WorkDir, ".probe-*")
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "not ready: working directory %s is not writable: %v", d.cfg.WorkDir, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

func (d *Driver) checkMountHelper() error {
	if d.cfg.MountHelper != "" {
		if _, err := os.Stat(d.cfg.MountHelper); err != nil {
			return fmt.Errorf("NFS mount helper %s is missing: %v", d.cfg.MountHelper, err)
		}
		return nil
	}
	if _, err := exec.LookPath("mount.nfs"); err == nil {
		return nil
	}
	for _, p := range []string{"/sbin/mount.nfs", "/usr/sbin/mount.nfs"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("NFS mount helper mount.nfs is not installed (not on PATH, /sbin or /usr/sbin); install nfs-common or nfs-utils")
}
