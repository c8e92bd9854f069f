package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

func TestGetPluginInfo(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.GetPluginInfo(context.Background(), &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetName() != DefaultDriverName || resp.GetVendorVersion() != Version() || resp.GetVendorVersion() == "" {
		t.Errorf("got %v, want name %s and version %s", resp, DefaultDriverName, Version())
	}

	d, err := New(Config{Mode: ModeNode, NodeID: testNode, DriverName: "nfs.example.org", Mounter: e.fake, MountHelper: e.helper})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = d.GetPluginInfo(context.Background(), &csi.GetPluginInfoRequest{})
	if err != nil || resp.GetName() != "nfs.example.org" {
		t.Errorf("custom name: got %v, %v", resp, err)
	}
}

func TestGetPluginCapabilities(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.GetPluginCapabilities(context.Background(), &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var controller, topology, online bool
	for _, c := range resp.GetCapabilities() {
		online = online || c.GetVolumeExpansion().GetType() == csi.PluginCapability_VolumeExpansion_ONLINE
		switch c.GetService().GetType() {
		case csi.PluginCapability_Service_CONTROLLER_SERVICE:
			controller = true
		case csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS:
			topology = true
		}
	}
	if !controller || topology || !online {
		t.Errorf("capabilities %v: want CONTROLLER_SERVICE, ONLINE volume expansion and no topology", resp.GetCapabilities())
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, e *env)
		want    codes.Code
		msg     []string
	}{
		{name: "ready", breakIt: func(*testing.T, *env) {}, want: codes.OK},
		{
			name: "mount helper missing",
			breakIt: func(t *testing.T, e *env) {
				if err := os.Remove(e.helper); err != nil {
					t.Fatal(err)
				}
			},
			want: codes.FailedPrecondition, msg: []string{"mount helper"},
		},
		{
			name: "workdir not writable",
			breakIt: func(t *testing.T, e *env) {
				// chmod would not stop root: put a file where the directory was.
				if err := os.RemoveAll(e.workDir); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.workDir, []byte("not a directory"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: codes.FailedPrecondition, msg: []string{"working directory", "not writable"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.breakIt(t, e)
			resp, err := e.d.Probe(context.Background(), &csi.ProbeRequest{})
			wantCode(t, err, tc.want)
			if err != nil {
				wantMessageContains(t, err, tc.msg...)
				if tc.name == "mount helper missing" {
					wantMessageContains(t, err, e.helper)
				} else {
					wantMessageContains(t, err, e.workDir)
				}
				return
			}
			if !resp.GetReady().GetValue() {
				t.Errorf("ready = %v, want true", resp.GetReady())
			}
			// The probe leaves nothing behind in the working directory.
			entries, _ := os.ReadDir(e.workDir)
			for _, de := range entries {
				if de.Name() != "shares" {
					t.Errorf("probe left %s in the working directory", de.Name())
				}
			}
		})
	}
}

func TestProbeNodeOnlyIgnoresWorkDir(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "mount.nfs")
	if err := os.WriteFile(helper, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Mode: ModeNode, NodeID: testNode, WorkDir: filepath.Join(t.TempDir(), "missing"), MountHelper: helper})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := d.Probe(context.Background(), &csi.ProbeRequest{})
	if err != nil || !resp.GetReady().GetValue() {
		t.Errorf("node-only probe: %v, %v", resp, err)
	}
}
