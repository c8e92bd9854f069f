package driver

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

const (
	testServer = "10.0.0.1"
	testShare  = "/export"
	testSource = testServer + ":" + testShare
	testNode   = "node-1"
	gib        = int64(1) << 30
)

// env is a driver in mode "both" on node-1 with one export, 10.0.0.1:/export.
type env struct {
	d       *Driver
	fake    *nfs.FakeMounter
	base    string // parent of exportDir, for "outside the share" checks
	export  string // the exported directory
	workDir string
	helper  string // an existing file standing in for mount.nfs

	closeOnce sync.Once
}

// close closes the driver once, for the tests that close it themselves.
func (e *env) close() { e.closeOnce.Do(e.d.Close) }

func newEnv(t testing.TB) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{base: base, export: filepath.Join(base, "export"), workDir: t.TempDir()}
	if err := os.Mkdir(e.export, 0o755); err != nil {
		t.Fatal(err)
	}
	e.helper = filepath.Join(t.TempDir(), "mount.nfs")
	if err := os.WriteFile(e.helper, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.fake = nfs.NewFakeMounter(map[string]string{testSource: e.export})
	d, err := New(Config{
		Mode: ModeBoth, NodeID: testNode, WorkDir: e.workDir, Mounter: e.fake, MountHelper: e.helper,
		OperationTimeout: time.Minute, ShareIdleTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	// Registered after the TempDirs, so it runs before their removal.
	t.Cleanup(e.close)
	return e
}

// shareMounts counts the controller's share mounts (under <workdir>/shares).
func (e *env) shareMounts(t *testing.T) int {
	t.Helper()
	return len(e.mounts(t, true))
}

// nodeMounts lists the mounts other than the controller's share mounts.
func (e *env) nodeMounts(t *testing.T) []nfs.MountPoint {
	t.Helper()
	return e.mounts(t, false)
}

func (e *env) mounts(t *testing.T, shares bool) []nfs.MountPoint {
	t.Helper()
	mps, err := e.fake.MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	sharesDir := filepath.Join(e.workDir, "shares")
	var out []nfs.MountPoint
	for _, mp := range mps {
		if (filepath.Dir(mp.Path) == sharesDir) == shares {
			out = append(out, mp)
		}
	}
	return out
}

// exportPath is a path on the export.
func (e *env) exportPath(rel string) string { return filepath.Join(e.export, filepath.FromSlash(rel)) }

func (e *env) mkdirExport(t *testing.T, rel string) {
	t.Helper()
	if err := os.MkdirAll(e.exportPath(rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (e *env) writeExport(t *testing.T, rel, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.exportPath(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.exportPath(rel), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// volumeIDFor is the ID the driver gives a volume with default parameters.
func volumeIDFor(subDir string, policy nfs.OnDelete) string {
	return nfs.Volume{Server: testServer, Share: testShare, SubDir: subDir, OnDelete: policy}.ID()
}

func baseParams() map[string]string {
	return map[string]string{"server": testServer, "share": testShare}
}

func withParams(extra map[string]string) map[string]string {
	p := baseParams()
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode, flags ...string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: flags}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func rwo() *csi.VolumeCapability { return mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER) }

func createReq(name string, params map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name:               name,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: gib},
		VolumeCapabilities: []*csi.VolumeCapability{rwo()},
		Parameters:         params,
	}
}

// create makes a volume and fails the test if that fails.
func (e *env) create(t *testing.T, name string, params map[string]string) *csi.Volume {
	t.Helper()
	resp, err := e.d.CreateVolume(context.Background(), createReq(name, params))
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (err %v), want %v", got, err, want)
	}
}

func wantMessageContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	msg := status.Convert(err).Message()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}

// snapshot lists every path below dir (following dir itself if it is a
// symlink) with its size and, for files, its content, skipping the driver's
// record directory.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == nfs.MetadataDirName && de.IsDir() {
			return filepath.SkipDir
		}
		entry := rel + " " + de.Type().String()
		if de.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(data)
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
